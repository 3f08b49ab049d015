"""reelforge: a self-hostable AI video generation service."""

__version__ = "0.1.0"
__all__ = ["__version__"]
