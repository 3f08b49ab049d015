"""Which modules a part of reelforge pulls in: the API stays clear of the renderer."""

from __future__ import annotations

import subprocess
import sys


def modules_loaded_by(module: str) -> set[str]:
    """The reelforge modules in ``sys.modules`` after a fresh interpreter imports ``module``."""
    script = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        "print('\\n'.join(name for name in sys.modules if name.startswith('reelforge')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(result.stdout.split())


def test_importing_the_api_app_does_not_import_the_renderer() -> None:
    loaded = modules_loaded_by("reelforge.api.app")
    assert "reelforge.media.image" in loaded  # the API checks uploaded images with it
    assert not {name for name in loaded if name.startswith("reelforge.media.render")}


def test_importing_the_local_provider_imports_the_renderer() -> None:
    # The check above would pass vacuously if the renderer never showed up in sys.modules.
    assert "reelforge.media.render" in modules_loaded_by("reelforge.providers.local")
