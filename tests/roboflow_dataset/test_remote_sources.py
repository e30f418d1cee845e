"""Remote recordings: one spooled copy when they fit the buffer, bounded streaming of MCAP otherwise."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests._servers import FaultProxy, S3Bucket, Schedule, fault_proxy, moto_server, s3_bucket

from roboflow_core import StorageError
from roboflow_dataset.sources import Source, open_source
from roboflow_dataset.synth import JOINT_TOPIC, SynthFormat, write_recording
from roboflow_storage import LruCache, ObjectReader, Storage, prefetch_recording

__all__ = ["fault_proxy", "moto_server", "s3_bucket"]

SUFFIX = {"mcap": ".mcap", "ros1": ".bag", "rrd": ".rrd"}
StartProxy = Callable[[Schedule], FaultProxy]


@pytest.fixture
def buffer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh local buffer (spool) directory for this test."""
    directory = tmp_path / "buffer"
    monkeypatch.setenv("ROBOFLOW_BUFFER_DIR", str(directory))
    monkeypatch.delenv("ROBOFLOW_BUFFER_MAX_BYTES", raising=False)
    return directory


def _spooled(buffer: Path) -> list[Path]:
    """The files in the private spool directories under ``buffer``."""
    return [p for spool in buffer.glob("roboflow-spool-*") for p in spool.iterdir()]


def _recording(tmp_path: Path, fmt: SynthFormat, **kwargs: Any) -> Path:
    return Path(write_recording(tmp_path / f"rec-{fmt}{SUFFIX.get(fmt, '')}", fmt, **kwargs).path)


def _upload(local: Path, store: Storage) -> str:
    """Copy a recording file or bag directory to ``store``; returns its key (a prefix for bags)."""
    files = [local] if local.is_file() else sorted(p for p in local.iterdir() if p.is_file())
    for path in files:
        store.put(path.name if local.is_file() else f"{local.name}/{path.name}", path.read_bytes())
    return local.name


def _content(source: Source) -> tuple[Any, ...]:
    messages = [(m.topic, m.log_time_ns, m.data) for m in source.messages()]
    return source.format, source.topics(), source.topic_types(), messages


def _counting(requests: list[tuple[str, str]]) -> Schedule:
    lock = threading.Lock()

    def schedule(_n: int, method: str, path: str) -> None:
        with lock:
            requests.append((method, path.split("?")[0]))

    return schedule


@pytest.mark.object_store
@pytest.mark.parametrize("fmt", ["mcap", "ros1", "ros2-db3", "ros2-mcap", "rrd"])
def test_a_recording_that_fits_the_buffer_is_downloaded_once(
    fmt: SynthFormat, tmp_path: Path, buffer: Path, s3_bucket: S3Bucket, fault_proxy: StartProxy
) -> None:
    local = _recording(tmp_path, fmt, duration_s=1.0)
    key = _upload(local, Storage.from_url(s3_bucket.url("runs")))
    requests: list[tuple[str, str]] = []
    proxy = fault_proxy(_counting(requests))
    url = s3_bucket.url(f"runs/{key}", endpoint=proxy.endpoint) + ("" if local.is_file() else "/")
    with open_source(local) as expected, open_source(url) as remote:
        assert remote.path == url.split("?")[0].rstrip("/")
        for _ in range(2):  # a conversion's two passes, plus counting
            assert _content(remote)[1:] == _content(expected)[1:]
    on_file = [m for m, p in requests if p.endswith((".mcap", ".bag", ".db3", ".rrd"))]
    assert on_file.count("GET") == 1  # no GET for the magic, no range reads: one download
    assert on_file.count("HEAD") == (1 if local.is_file() else 0)  # a bag's listing gives sizes
    assert len(_spooled(buffer)) == 1


def test_an_evicted_spool_copy_stays_readable(tmp_path: Path, buffer: Path) -> None:
    local = _recording(tmp_path, "mcap", duration_s=0.5)
    root = f"memory://{uuid.uuid4().hex}"
    _upload(local, Storage.from_url(root))
    with open_source(f"{root}/{local.name}") as remote:
        for copy in _spooled(buffer):
            copy.unlink()  # what the LRU buffer does to make room
        with open_source(local) as expected:
            assert _content(remote) == _content(expected)
            assert _content(remote) == _content(expected)


def test_an_mcap_larger_than_the_buffer_streams_and_opens_from_its_summary(
    tmp_path: Path, buffer: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _recording(tmp_path, "mcap", duration_s=2.0, width=160, height=120)
    size = local.stat().st_size
    root = f"memory://{uuid.uuid4().hex}"
    _upload(local, Storage.from_url(root))
    monkeypatch.setenv("ROBOFLOW_BUFFER_MAX_BYTES", str(size - 1))
    fetched: list[int] = []
    block = 64 << 10
    open_reader = Storage.open_reader

    def small_blocks(self: Storage, key: str, **_: int) -> ObjectReader:
        return open_reader(self, key, block_size=block)

    def counted(self: Storage, key: str, start: int, end: int) -> bytes:
        fetched.append(end - start)
        return Storage.get(self, key)[start:end]

    monkeypatch.setattr(Storage, "open_reader", small_blocks)
    monkeypatch.setattr(Storage, "get_range", counted)
    with open_source(f"{root}/{local.name}") as remote, open_source(local) as expected:
        assert remote.topic_types() == expected.topic_types()
        opened = sum(fetched)
        assert opened < size // 4  # the magic and the summary
        assert remote.topics() == expected.topics()
        assert sum(fetched) > opened  # counting reads the message indexes, and only now
        stamps = [m.log_time_ns for m in remote.messages([JOINT_TOPIC])]
        assert stamps == [m.log_time_ns for m in expected.messages([JOINT_TOPIC])]
        assert _content(remote) == _content(expected)
    assert not _spooled(buffer)


@pytest.mark.parametrize("fmt", ["ros1", "rrd"])
def test_a_bag_or_rrd_larger_than_the_buffer_is_a_clear_error(
    tmp_path: Path, buffer: Path, monkeypatch: pytest.MonkeyPatch, fmt: SynthFormat
) -> None:
    local = _recording(tmp_path, fmt, duration_s=0.5)
    root = f"memory://{uuid.uuid4().hex}"
    _upload(local, Storage.from_url(root))
    monkeypatch.setenv("ROBOFLOW_BUFFER_MAX_BYTES", "1000")
    with pytest.raises(StorageError, match=r"does not fit the local buffer.*ROBOFLOW_BUFFER_MAX_BYTES"):
        open_source(f"{root}/{local.name}")


@pytest.mark.object_store
@pytest.mark.parametrize("fmt", ["ros1", "ros2-db3"])
def test_a_prefetched_recording_opens_without_downloading_again(
    fmt: SynthFormat, tmp_path: Path, buffer: Path, s3_bucket: S3Bucket, fault_proxy: StartProxy
) -> None:
    local = _recording(tmp_path, fmt, duration_s=1.0)
    key = _upload(local, Storage.from_url(s3_bucket.url("runs")))
    requests: list[tuple[str, str]] = []
    proxy = fault_proxy(_counting(requests))
    url = s3_bucket.url(f"runs/{key}", endpoint=proxy.endpoint)
    url = url if local.is_file() else url.replace("?", "/?", 1)  # a bag prefix ends in /
    assert prefetch_recording(url) == sum(
        p.stat().st_size for p in ([local] if local.is_file() else local.glob("*.db3"))
    )
    fetched = [m for m, p in requests if p.endswith((".bag", ".db3")) and m == "GET"]
    assert len(fetched) == 1
    with open_source(local) as expected, open_source(url) as remote:
        assert _content(remote)[1:] == _content(expected)[1:]
    assert [m for m, p in requests if p.endswith((".bag", ".db3")) and m == "GET"] == fetched
    assert prefetch_recording(local) == 0  # a local recording needs nothing


def test_concurrent_fetches_of_one_entry_download_once(tmp_path: Path) -> None:
    cache = LruCache(tmp_path / "cache", max_bytes=1 << 20)
    calls: list[int] = []
    started = threading.Event()

    def slow_fetch(target: Path) -> None:
        calls.append(1)
        started.set()
        time.sleep(0.2)
        target.write_bytes(b"x" * 10)

    results: list[Path] = []
    first = threading.Thread(
        target=lambda: results.append(cache.get_or_fetch("s3://b/k", "e", 10, slow_fetch))
    )
    first.start()
    started.wait(5)
    results.append(cache.get_or_fetch("s3://b/k", "e", 10, slow_fetch))  # waits for the first fetch
    first.join()
    assert len(calls) == 1 and results[0] == results[1] and results[0].read_bytes() == b"x" * 10
