from __future__ import annotations

import threading

import pytest

from roboflow_storage import ObjectReader

DATA = bytes(range(256)) * 40  # 10240 bytes


class _Ranges:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def __call__(self, start: int, end: int) -> bytes:
        with self._lock:
            self.calls.append((start, end))
        return DATA[start:end]


def test_sequential_reads_fetch_ahead_and_each_block_once() -> None:
    fetch = _Ranges()
    with ObjectReader(fetch, len(DATA), name="mem://x", block_size=1024, read_ahead=2) as reader:
        assert reader.read(10) == DATA[:10]
        assert sorted(fetch.calls)[:3] == [(0, 1024), (1024, 2048), (2048, 3072)]
        chunks = iter(lambda: reader.read(300), b"")
        assert DATA[:10] + b"".join(chunks) == DATA
    assert sorted(set(fetch.calls)) == sorted(fetch.calls)  # no block fetched twice
    assert len(fetch.calls) == 10


def test_random_reads_in_one_block_do_not_read_ahead() -> None:
    fetch = _Ranges()
    with ObjectReader(fetch, len(DATA), name="mem://x", block_size=1024, read_ahead=4) as reader:
        reader.seek(5000)
        assert reader.read(20) == DATA[5000:5020]
        reader.seek(5100)
        assert reader.read(20) == DATA[5100:5120]
    assert fetch.calls == [(4096, 5120)]


def test_closed_reader_and_bad_seek() -> None:
    reader = ObjectReader(_Ranges(), len(DATA), name="mem://x")
    with pytest.raises(OSError, match="negative seek"):
        reader.seek(-1)
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        reader.read(1)


def test_fetch_errors_reach_the_reader() -> None:
    def broken(start: int, end: int) -> bytes:
        raise RuntimeError("network down")

    with ObjectReader(broken, 100, name="mem://x") as reader, pytest.raises(RuntimeError, match="network"):
        reader.read(1)
