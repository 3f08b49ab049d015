"""HTTP layer: speaks HTTP and nothing else; domain work lives below it."""

from reelforge.api.app import create_app

__all__ = ["create_app"]
