"""Growing copies: read while downloading, resumed and failed streams, close midway, cache reuse."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from tests._servers import TEST_SECRET, FaultProxy, S3Bucket, Schedule

from roboflow_core import StorageError
from roboflow_storage import GrowingCopy, LruCache, Reservation, Spool, Storage

from .conftest import FAST_RETRY

MIB = 1 << 20
PIECE = 256 << 10
StartProxy = Callable[[Schedule], FaultProxy]
DATA = random.Random(11).randbytes(3 * MIB + 4321)


class _Stream:
    """Stands in for ``Storage.stream_range``: the real GET, cut into ``PIECE`` chunks.

    It can pause before the second chunk until :attr:`resume` is set, and break the ``n``-th
    stream (from 0) after ``breaks(n)`` chunks.
    """

    def __init__(
        self, store: Storage, *, pause: bool = False, breaks: Callable[[int], int | None] = lambda _n: None
    ) -> None:
        self._real = store.stream_range
        self._url_of = store.url_of
        self._pause = pause
        self._breaks = breaks
        self.calls: list[tuple[int, int]] = []
        self.served = 0
        self.paused = threading.Event()
        self.resume = threading.Event()
        store.stream_range = self  # type: ignore[method-assign]

    def __call__(self, key: str, etag: str | None, start: int, end: int) -> Iterator[bytes]:
        call = len(self.calls)
        self.calls.append((start, end))
        sent, breaks = 0, self._breaks(call)
        if breaks == 0:
            raise StorageError("connection refused", url=self._url_of(key))
        for chunk in self._real(key, etag, start, end):
            for pos in range(0, len(chunk), PIECE):
                if sent and self._pause and not self.resume.is_set():
                    self.paused.set()
                    assert self.resume.wait(10)
                if sent == breaks:
                    raise StorageError("connection reset while reading the body", url=self._url_of(key))
                self.served += 1
                sent += 1
                yield chunk[pos : pos + PIECE]


def _store(bucket: S3Bucket, tmp_path: Path, endpoint: str | None = None) -> tuple[Storage, Spool]:
    store = Storage.from_url(bucket.url("p", endpoint=endpoint), retry=FAST_RETRY)
    return store, Spool(LruCache(tmp_path / "buffer"))


def _put(bucket: S3Bucket, data: bytes = DATA) -> None:
    Storage.from_url(bucket.url("p")).put("run.bag", data)


def _random_reads(file: IO[bytes], seed: int, errors: list[str]) -> None:
    rng = random.Random(seed)
    with file:
        for _ in range(40):
            start = rng.randrange(len(DATA) + 10)
            length = rng.randrange(1, 300_000)
            file.seek(start)
            if file.read(length) != DATA[start : start + length]:
                errors.append(f"seed {seed}: bytes {start}+{length} differ")
        file.seek(-1000, 2)
        if file.read() != DATA[-1000:]:
            errors.append(f"seed {seed}: the tail differs")


def _in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)
    thread.start()
    return thread, result


def _leftovers(tmp_path: Path) -> list[str]:
    """The files in the private spool directories under ``tmp_path/buffer``."""
    return sorted(p.name for spool in (tmp_path / "buffer").iterdir() for p in spool.iterdir())


@pytest.mark.object_store
def test_several_readers_read_the_object_with_random_seeks(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    _put(s3_bucket)
    store, spool = _store(s3_bucket, tmp_path)
    errors: list[str] = []
    with spool.growing_copy(store, "run.bag") as copy:
        assert copy.size == len(DATA)
        readers = [threading.Thread(target=_random_reads, args=(copy.open(), s, errors)) for s in range(4)]
        for reader in readers:
            reader.start()
        with copy.open() as whole:
            assert whole.read() == DATA and whole.read() == b""
        for reader in readers:
            reader.join(30)
        path = copy.wait()
        assert copy.done and copy.available == len(DATA)
    assert errors == []
    assert path.read_bytes() == DATA and _leftovers(tmp_path) == [path.name]


@pytest.mark.object_store
def test_readers_read_while_the_download_runs(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    _put(s3_bucket)
    store, spool = _store(s3_bucket, tmp_path)
    stream = _Stream(store, pause=True)
    with spool.growing_copy(store, "run.bag") as copy:
        assert stream.paused.wait(10)
        first = copy.available
        assert first == PIECE and not copy.done
        early = copy.open()
        assert early.read(first) == DATA[:first]  # there already: no wait
        rest, got = _in_thread(early.read)
        time.sleep(0.3)
        assert rest.is_alive() and got == []  # waits for bytes still downloading
        stream.resume.set()
        rest.join(10)
        assert got == [DATA[first:]]
        assert copy.wait().read_bytes() == DATA and copy.available == len(DATA) and copy.done
        early.close()
    assert stream.calls == [(0, len(DATA))]  # one GET, in order


@pytest.mark.object_store
def test_a_second_copy_of_the_object_waits_for_the_first(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    _put(s3_bucket)
    store, spool = _store(s3_bucket, tmp_path)
    stream = _Stream(store, pause=True)
    info = store.head("run.bag")
    with spool.growing_copy(store, "run.bag", info=info) as first:
        assert stream.paused.wait(10)
        waiter, second = _in_thread(lambda: spool.growing_copy(store, "run.bag", info=info))
        time.sleep(0.3)
        assert waiter.is_alive()
        stream.resume.set()
        waiter.join(10)
        copy = second[0]
        assert isinstance(copy, GrowingCopy) and copy.done
        with copy, copy.open() as file:
            assert file.read() == DATA and copy.wait() == first.wait()
    assert len(stream.calls) == 1


@pytest.mark.object_store
def test_a_broken_stream_resumes_at_the_watermark(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    _put(s3_bucket)
    store, spool = _store(s3_bucket, tmp_path)
    stream = _Stream(store, breaks=lambda n: 1 if n == 0 else None)  # the first GET breaks after a chunk
    with spool.growing_copy(store, "run.bag") as copy, copy.open() as file:
        assert file.read() == DATA
        assert copy.wait().read_bytes() == DATA
    assert stream.calls == [(0, len(DATA)), (PIECE, len(DATA))]


def _refuse_gets(_n: int, method: str, _path: str) -> int | None:
    return 403 if method == "GET" else None


@pytest.mark.object_store
@pytest.mark.parametrize("failure", ["refused", "broken"])
def test_a_failed_download_raises_and_leaves_nothing(
    failure: str, s3_bucket: S3Bucket, fault_proxy: StartProxy, tmp_path: Path
) -> None:
    _put(s3_bucket)
    if failure == "refused":
        store, spool = _store(s3_bucket, tmp_path, fault_proxy(_refuse_gets).endpoint)
        readable = 0
    else:  # every GET breaks after one chunk: resumed max_retries times, then the error stays
        store, spool = _store(s3_bucket, tmp_path)
        _Stream(store, breaks=lambda _n: 1)
        readable = (FAST_RETRY.max_retries + 1) * PIECE
    with spool.growing_copy(store, "run.bag") as copy:
        with pytest.raises(StorageError, match=r"s3://[^/]+/p/run\.bag") as raised:
            copy.wait()
        assert TEST_SECRET not in str(raised.value)
        assert copy.available == readable and not copy.done
        with copy.open() as file:
            assert file.read(readable) == DATA[:readable]  # bytes there before the failure
            with pytest.raises(StorageError):
                file.read(1)
    assert _leftovers(tmp_path) == [] and len(spool.cache) == 0
    healthy = Storage.from_url(s3_bucket.url("p"), retry=FAST_RETRY)
    fetch, got = _in_thread(lambda: spool.local_copy(healthy, "run.bag").read_bytes())
    fetch.join(10)
    assert got == [DATA]  # the in-flight mark was cleared


@pytest.mark.object_store
def test_close_stops_the_download_and_leaves_nothing(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    _put(s3_bucket)
    store, spool = _store(s3_bucket, tmp_path)
    stream = _Stream(store, pause=True)
    copy = spool.growing_copy(store, "run.bag")
    assert stream.paused.wait(10)
    reader = copy.open()
    assert any(p.endswith(".partial") for p in _leftovers(tmp_path))
    copy.close()
    copy.close()
    with pytest.raises(ValueError, match="closed"):
        copy.open()
    with pytest.raises(StorageError, match="closed before its download finished"):
        copy.wait()
    with reader:
        assert reader.read(PIECE) == DATA[:PIECE]
        with pytest.raises(StorageError, match="closed"):
            reader.read(1)
    stream.resume.set()
    assert copy._thread is not None
    copy._thread.join(10)
    assert not copy._thread.is_alive()
    assert copy.available == PIECE and stream.served == 2  # the chunk after the close was dropped
    assert stream.calls == [(0, len(DATA))]
    assert _leftovers(tmp_path) == [] and len(spool.cache) == 0


def _count_requests(requests: list[str]) -> Schedule:
    lock = threading.Lock()

    def schedule(_n: int, method: str, _path: str) -> None:
        with lock:
            requests.append(method)

    return schedule


@pytest.mark.object_store
def test_a_completed_copy_is_served_from_the_cache(
    s3_bucket: S3Bucket, fault_proxy: StartProxy, tmp_path: Path
) -> None:
    _put(s3_bucket)
    requests: list[str] = []
    store, spool = _store(s3_bucket, tmp_path, fault_proxy(_count_requests(requests)).endpoint)
    with spool.growing_copy(store, "run.bag") as copy:
        path = copy.wait()
    assert requests == ["HEAD", "GET"]
    requests.clear()
    with spool.growing_copy(store, "run.bag") as again:
        assert again.done and again.available == len(DATA) and again.wait() == path
        with again.open() as file:
            assert file.read() == DATA
    assert requests == ["HEAD"]
    assert spool.local_copy(store, "run.bag") == path and requests == ["HEAD", "HEAD"]


@pytest.mark.object_store
def test_an_empty_object_is_complete_without_a_get(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    _put(s3_bucket, b"")
    store, spool = _store(s3_bucket, tmp_path)
    stream = _Stream(store)
    with spool.growing_copy(store, "run.bag") as copy, copy.open() as file:
        assert copy.wait().read_bytes() == b"" and file.read() == b""
    assert stream.calls == [] and len(spool.cache) == 1


def test_a_local_store_gives_the_file_itself(tmp_path: Path) -> None:
    cache = LruCache(tmp_path / "buffer")
    store = Storage.from_url(tmp_path / "root")
    store.put("a/run.bag", DATA)
    with Spool(cache).growing_copy(store, "a/run.bag") as copy:
        assert copy.done and copy.size == copy.available == len(DATA)
        assert copy.wait() == tmp_path / "root" / "a" / "run.bag"
        with copy.open() as file:
            file.seek(1000)
            assert file.read(10) == DATA[1000:1010] and file.read() == DATA[1010:]
    assert len(cache) == 0 and not any(cache.directory.iterdir())


def test_a_reservation_commits_or_abandons_its_entry(tmp_path: Path) -> None:
    cache = LruCache(tmp_path, max_bytes=100)
    reservation = cache.reserve("s3://b/a.bag", "e1", 5)
    assert isinstance(reservation, Reservation)
    reservation.partial.write_bytes(b"abc")
    with pytest.raises(StorageError, match="expected 5"):
        reservation.commit()
    reservation.abandon()
    assert not any(cache.directory.iterdir()) and len(cache) == 0
    again = cache.reserve("s3://b/a.bag", "e1", 5)  # not left in flight: this would wait forever
    assert isinstance(again, Reservation)
    again.partial.write_bytes(b"abcde")
    assert again.commit() == again.path and again.path.read_bytes() == b"abcde"
    again.abandon()
    assert cache.reserve("s3://b/a.bag", "e1", 5) == again.path and len(cache) == 1
    with pytest.raises(StorageError, match="does not fit the local buffer"):
        cache.reserve("s3://b/big.bag", None, 101)
    assert isinstance(cache.reserve("s3://b/big.bag", None, 100), Reservation)
