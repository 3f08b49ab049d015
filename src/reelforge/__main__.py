"""``python -m reelforge`` is the ``reelforge`` command."""

from reelforge.cli import main

main()
