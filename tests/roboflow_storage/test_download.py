"""Parallel ranged downloads: identical bytes, bounded parts, resumed streams, changed objects."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests._servers import FaultProxy, S3Bucket, Schedule, every_kth

from roboflow_core import ConfigError, StorageError
from roboflow_storage import LruCache, Spool, Storage, default_spool
from roboflow_storage._download import download, part_bounds

from .conftest import FAST_RETRY

MIB = 1 << 20
StartProxy = Callable[[Schedule], FaultProxy]
DATA = random.Random(7).randbytes(3 * MIB + 12345)


def _chunked(
    data: bytes, calls: list[tuple[int, int]], chunk: int = 100_000
) -> Callable[[int, int], Iterator[bytes]]:
    lock = threading.Lock()

    def stream(start: int, end: int) -> Iterator[bytes]:
        with lock:
            calls.append((start, end))
        for pos in range(start, end, chunk):
            yield data[pos : min(pos + chunk, end)]

    return stream


@pytest.mark.parametrize(
    ("size", "part", "parts"),
    [(0, 10, 0), (5, 10, 1), (14, 10, 1), (15, 10, 2), (100, 10, 10), (105, 10, 11)],
)
def test_part_bounds_are_equal_and_cover_the_object(size: int, part: int, parts: int) -> None:
    bounds = part_bounds(size, part)
    assert len(bounds) == parts
    assert [b[0] for b in bounds[1:]] == [b[1] for b in bounds[:-1]]
    if bounds:
        assert bounds[0][0] == 0 and bounds[-1][1] == size
        assert max(e - s for s, e in bounds) - min(e - s for s, e in bounds) <= 1


@pytest.mark.parametrize("concurrency", [1, 3, 16])
def test_parallel_parts_give_identical_bytes(tmp_path: Path, concurrency: int) -> None:
    calls: list[tuple[int, int]] = []
    target = tmp_path / "copy"
    target.write_bytes(b"stale content that is longer than nothing")
    download(
        _chunked(DATA, calls),
        len(DATA),
        target,
        part_size=MIB // 2,
        concurrency=concurrency,
        resumes=0,
        url="u",
    )
    assert target.read_bytes() == DATA
    assert sorted(calls) == part_bounds(len(DATA), MIB // 2) and len(calls) == 6


def test_empty_object_makes_an_empty_file_without_requests(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    download(_chunked(b"", calls), 0, tmp_path / "empty", part_size=MIB, concurrency=4, resumes=0, url="u")
    assert (tmp_path / "empty").read_bytes() == b"" and calls == []


def test_a_broken_stream_resumes_where_it_stopped(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    (first, _), (second, end2), _ = part_bounds(len(DATA), MIB)
    broken = {first, second}  # the first request of each of these parts breaks after one chunk

    def flaky(start: int, end: int) -> Iterator[bytes]:
        calls.append((start, end))
        yield DATA[start : start + 1000]
        if start in broken:
            broken.discard(start)
            raise StorageError("connection reset while reading the body", url="u")
        yield DATA[start + 1000 : end]

    download(flaky, len(DATA), tmp_path / "copy", part_size=MIB, concurrency=2, resumes=2, url="u")
    assert (tmp_path / "copy").read_bytes() == DATA
    assert (second + 1000, end2) in calls and (1000, second) in calls  # resumed, not restarted


def test_resumes_are_bounded_and_a_failed_request_is_not_resumed(tmp_path: Path) -> None:
    def always_breaks(start: int, end: int) -> Iterator[bytes]:
        yield DATA[start : start + 10]
        raise StorageError("connection reset", url="u")

    with pytest.raises(StorageError, match="connection reset"):
        download(
            always_breaks, len(DATA), tmp_path / "a", part_size=4 * MIB, concurrency=1, resumes=3, url="u"
        )
    calls: list[int] = []

    def refused(start: int, end: int) -> Iterator[bytes]:
        calls.append(start)
        raise StorageError("access denied", url="u")
        yield b""  # a generator, as a real stream is

    with pytest.raises(StorageError, match="access denied"):
        download(refused, len(DATA), tmp_path / "b", part_size=4 * MIB, concurrency=1, resumes=3, url="u")
    assert calls == [0]


def test_a_short_answer_is_an_error(tmp_path: Path) -> None:
    def short(start: int, end: int) -> Iterator[bytes]:
        yield DATA[start : end - 1]

    with pytest.raises(StorageError, match="the object changed"):
        download(short, len(DATA), tmp_path / "a", part_size=MIB, concurrency=2, resumes=0, url="u")


def test_one_failing_part_stops_the_others(tmp_path: Path) -> None:
    served: list[int] = []

    def fail_first(start: int, end: int) -> Iterator[bytes]:
        if start == 0:
            raise StorageError("no such bucket", url="u")
        for pos in range(start, end, 1000):
            served.append(pos)
            yield DATA[pos : min(pos + 1000, end)]

    with pytest.raises(StorageError, match="no such bucket"):
        download(fail_first, len(DATA), tmp_path / "a", part_size=MIB // 4, concurrency=2, resumes=0, url="u")
    assert len(served) < len(DATA) // 1000  # the rest was not all fetched


def _counting(requests: list[tuple[str, str]]) -> Schedule:
    lock = threading.Lock()

    def schedule(_n: int, method: str, path: str) -> None:
        with lock:
            requests.append((method, path))

    return schedule


@pytest.mark.object_store
def test_local_copy_sends_one_get_per_part(
    s3_bucket: S3Bucket, fault_proxy: StartProxy, tmp_path: Path
) -> None:
    Storage.from_url(s3_bucket.url("p")).put("run.bag", DATA)
    requests: list[tuple[str, str]] = []
    proxy = fault_proxy(_counting(requests))
    store = Storage.from_url(s3_bucket.url("p", endpoint=proxy.endpoint), retry=FAST_RETRY)
    spool = Spool(LruCache(tmp_path / "buffer"), part_size=MIB, concurrency=3)
    copy = spool.local_copy(store, "run.bag")
    assert copy.read_bytes() == DATA
    assert [m for m, _ in requests].count("GET") == len(part_bounds(len(DATA), MIB)) == 3
    requests.clear()
    assert spool.local_copy(store, "run.bag") == copy and [m for m, _ in requests] == ["HEAD"]  # cached


@pytest.mark.object_store
def test_an_object_replaced_during_the_download_fails(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    writer = Storage.from_url(s3_bucket.url("p"))
    writer.put("run.bag", DATA)
    store = Storage.from_url(s3_bucket.url("p"), retry=FAST_RETRY)
    real = store.stream_range

    def replace_midway(key: str, etag: str | None, start: int, end: int) -> Iterator[bytes]:
        if start > 0:
            writer.put("run.bag", DATA[::-1])
        return real(key, etag, start, end)

    store.stream_range = replace_midway  # type: ignore[method-assign]
    with pytest.raises(StorageError, match="changed while it was being read"):
        Spool(LruCache(tmp_path / "buffer"), part_size=MIB).local_copy(store, "run.bag")
    assert not any(p for spool in (tmp_path / "buffer").iterdir() for p in spool.iterdir())


def test_download_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOFLOW_DOWNLOAD_PART_BYTES", str(3 * MIB))
    monkeypatch.setenv("ROBOFLOW_DOWNLOAD_CONCURRENCY", "2")
    spool = default_spool()
    assert (spool.part_size, spool.concurrency) == (3 * MIB, 2)
    assert Spool(spool.cache, concurrency=5).concurrency == 5
    monkeypatch.setenv("ROBOFLOW_DOWNLOAD_CONCURRENCY", "zero")
    with pytest.raises(ConfigError, match="ROBOFLOW_DOWNLOAD_CONCURRENCY"):
        default_spool()


@pytest.mark.object_store
@pytest.mark.parametrize("fault", [503, "drop"])
def test_parallel_download_survives_transient_faults(
    fault: int | str, s3_bucket: S3Bucket, fault_proxy: StartProxy, tmp_path: Path
) -> None:
    Storage.from_url(s3_bucket.url("p")).put("run.bag", DATA)
    proxy = fault_proxy(every_kth(2, fault))  # type: ignore[arg-type]
    store = Storage.from_url(s3_bucket.url("p", endpoint=proxy.endpoint), retry=FAST_RETRY)
    spool = Spool(LruCache(tmp_path / "buffer"), part_size=MIB, concurrency=3)
    assert spool.local_copy(store, "run.bag").read_bytes() == DATA
    assert proxy.faults >= 2
