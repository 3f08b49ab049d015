"""Where finished files and uploads live: a local directory or an S3-compatible bucket.

``build_storage(settings)`` picks the implementation from ``settings.storage.kind``;
the S3 client is imported only when it is used.
"""

from __future__ import annotations

from reelforge.settings import Settings
from reelforge.storage.base import ObjectInfo, Storage, join_key
from reelforge.storage.local import LocalStorage

__all__ = ["LocalStorage", "ObjectInfo", "Storage", "build_storage", "join_key"]


def build_storage(settings: Settings) -> Storage:
    if settings.storage.kind == "s3":
        from reelforge.storage.s3 import S3Storage

        return S3Storage(settings.storage)
    # Keys map onto today's layout: videos/<id>/..., uploads/<name>.
    return LocalStorage(settings.data_dir)
