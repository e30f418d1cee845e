"""One conformance suite run against memory://, a local directory and s3:// (moto)."""

from __future__ import annotations

import functools
import os
import random
from pathlib import Path

import pytest
from tests._servers import S3Bucket

from roboflow_storage import (
    LruCache,
    ObjectExistsError,
    ObjectNotFoundError,
    RetryPolicy,
    Spool,
    Storage,
    default_spool,
)

MIB = 1 << 20


def _payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def test_put_get_head_exists_delete(storage: Storage) -> None:
    etag = storage.put("a/b.bin", b"hello world")
    assert storage.get("a/b.bin") == b"hello world"
    info = storage.head("a/b.bin")
    assert (info.key, info.size) == ("a/b.bin", 11)
    assert info.etag == etag or etag is None
    assert storage.exists("a/b.bin")
    storage.delete("a/b.bin")
    assert not storage.exists("a/b.bin")
    storage.delete("a/b.bin")  # deleting a missing object is fine


def test_get_range(storage: Storage) -> None:
    data = _payload(1000)
    storage.put("r.bin", data)
    assert storage.get_range("r.bin", 0, 10) == data[:10]
    assert storage.get_range("r.bin", 990, 1000) == data[990:]
    assert storage.get_range("r.bin", 5, 5) == b""


def test_list_is_by_path_segment_and_glob_sorts(storage: Storage) -> None:
    for key in ["runs/a.mcap", "runs/b.bag", "runs/deep/c.mcap", "runsx/d.mcap", "top.mcap"]:
        storage.put(key, b"x")
    assert sorted(i.key for i in storage.list("runs")) == ["runs/a.mcap", "runs/b.bag", "runs/deep/c.mcap"]
    assert len(list(storage.list())) == 5
    assert [i.key for i in storage.glob("runs/*.mcap")] == ["runs/a.mcap"]
    assert [i.key for i in storage.glob("runs/**/*.mcap")] == ["runs/a.mcap", "runs/deep/c.mcap"]
    assert [i.key for i in storage.glob("*/?.ba[gh]")] == ["runs/b.bag"]
    assert [i.key for i in storage.glob("top.mcap")] == ["top.mcap"]
    assert storage.glob("missing.mcap") == []


def test_conditional_create(storage: Storage) -> None:
    storage.put("lock", b"first", mode="create")
    with pytest.raises(ObjectExistsError, match="already exists") as info:
        storage.put("lock", b"second", mode="create")
    assert info.value.url.endswith("root/lock")
    assert storage.get("lock") == b"first"
    storage.put("lock", b"third")
    assert storage.get("lock") == b"third"


def test_multipart_writer_visible_only_after_close(storage: Storage) -> None:
    data = _payload(12 * MIB, seed=1)
    target = Storage(storage.location, retry=storage.retry, part_size=5 * MIB)
    with target.open_writer("big.bin") as out:
        for start in range(0, len(data), 3 * MIB):
            out.write(data[start : start + 3 * MIB])
        assert out.tell() == len(data)
        assert not storage.exists("big.bin")
    assert out.closed
    assert storage.head("big.bin").size == len(data)
    assert storage.get("big.bin") == data


def test_failed_writer_leaves_nothing_visible(storage: Storage) -> None:
    storage.put("keep.bin", b"old")
    with pytest.raises(RuntimeError), storage.open_writer("keep.bin") as out:
        out.write(_payload(6 * MIB))
        raise RuntimeError("stage failed")
    assert storage.get("keep.bin") == b"old"
    with pytest.raises(ValueError, match="closed"):
        out.write(b"more")


def test_large_put_is_multipart_and_whole(storage: Storage) -> None:
    data = _payload(11 * MIB, seed=2)
    Storage(storage.location, retry=storage.retry, part_size=5 * MIB).put("put.bin", data)
    assert storage.get("put.bin") == data


def test_reader_seeks_and_reads_ahead(storage: Storage) -> None:
    data = _payload(3 * MIB + 123, seed=3)
    storage.put("rec.mcap", data)
    with storage.open_reader("rec.mcap", block_size=256 * 1024, read_ahead=3) as reader:
        assert reader.seekable() and reader.size == len(data)
        assert reader.read(8) == data[:8]
        reader.seek(-100, os.SEEK_END)
        assert reader.read() == data[-100:]
        assert reader.read(10) == b""
        reader.seek(1_000_000)
        assert reader.read(600_000) == data[1_000_000:1_600_000]
        reader.seek(-5, os.SEEK_CUR)
        assert reader.tell() == 1_599_995
        buf = bytearray(5)
        assert reader.readinto(buf) == 5 and bytes(buf) == data[1_599_995:1_600_000]
        reader.seek(0)
        assert reader.read() == data


def test_copy_rename(storage: Storage) -> None:
    storage.put("src", b"payload")
    storage.copy("src", "dst")
    assert storage.get("dst") == b"payload"
    storage.rename("dst", "moved/dst")
    assert not storage.exists("dst")
    assert storage.get("moved/dst") == b"payload"


def test_missing_key_errors_name_the_url(storage: Storage) -> None:
    spool_copy = functools.partial(default_spool().local_copy, storage)
    for call in (storage.get, storage.head, storage.open_reader, spool_copy):
        with pytest.raises(ObjectNotFoundError, match="no such object") as info:
            call("nope.mcap")
        assert info.value.url == storage.url_of("nope.mcap")
    with pytest.raises(ObjectNotFoundError):
        storage.copy("nope.mcap", "x")


def test_local_copy_spools_into_the_cache_once(storage: Storage, tmp_path: Path) -> None:
    data = _payload(2 * MIB, seed=4)
    storage.put("bags/run.bag", data)
    cache = LruCache(tmp_path / "cache", max_bytes=8 * MIB)
    spool = Spool(cache)
    first = spool.local_copy(storage, "bags/run.bag")
    assert first.read_bytes() == data and first.suffix == ".bag"
    if storage.is_local:
        assert len(cache) == 0 and first == Path(storage.url, "bags/run.bag")
        return
    assert first.parent == cache.directory and len(cache) == 1
    inode = first.stat().st_ino
    assert spool.local_copy(storage, "bags/run.bag") == first
    assert first.stat().st_ino == inode  # not downloaded again
    storage.put("bags/run.bag", data[::-1])  # a new etag is a new entry
    assert spool.local_copy(storage, "bags/run.bag").read_bytes() == data[::-1]


def test_storages_on_one_bucket_share_one_client(s3_bucket: S3Bucket) -> None:
    a, b = Storage.from_url(s3_bucket.url("a")), Storage.from_url(s3_bucket.url("b"))
    assert a._store is b._store  # no new client (TLS roots, connection pool) per storage
    other = Storage.from_url(s3_bucket.url("a"), retry=RetryPolicy(max_retries=1))
    assert other._store is not a._store
    a.put("k", b"v")
    assert a.get("k") == b"v" and not b.exists("k")  # each keeps its own prefix
