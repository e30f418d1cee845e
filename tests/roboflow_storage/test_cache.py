from __future__ import annotations

from pathlib import Path

import pytest

from roboflow_core import StorageError
from roboflow_storage import LruCache


def _fetcher(data: bytes, calls: list[str]):  # type: ignore[no-untyped-def]
    def fetch(path: Path) -> None:
        calls.append(path.name)
        path.write_bytes(data)

    return fetch


def test_hits_do_not_refetch_and_etag_changes_do(tmp_path: Path) -> None:
    cache = LruCache(tmp_path, max_bytes=100)
    calls: list[str] = []
    first = cache.get_or_fetch("s3://b/a.bag", "e1", 10, _fetcher(b"0" * 10, calls))
    assert cache.get_or_fetch("s3://b/a.bag", "e1", 10, _fetcher(b"1" * 10, calls)) == first
    assert len(calls) == 1 and first.read_bytes() == b"0" * 10
    changed = cache.get_or_fetch("s3://b/a.bag", "e2", 10, _fetcher(b"2" * 10, calls))
    assert changed != first and changed.read_bytes() == b"2" * 10


def test_least_recently_used_is_evicted(tmp_path: Path) -> None:
    cache = LruCache(tmp_path, max_bytes=30)
    paths = {name: cache.get_or_fetch(f"s3://b/{name}", None, 10, _fetcher(b"x" * 10, [])) for name in "abc"}
    cache.get_or_fetch("s3://b/a", None, 10, _fetcher(b"", []))  # a becomes most recent
    cache.get_or_fetch("s3://b/d", None, 10, _fetcher(b"y" * 10, []))
    assert not paths["b"].exists()
    assert paths["a"].exists() and paths["c"].exists()
    assert cache.size == 30 and len(cache) == 3


def test_reopened_cache_adopts_entries_and_bound(tmp_path: Path) -> None:
    cache = LruCache(tmp_path, max_bytes=100)
    for name in "abcd":
        cache.get_or_fetch(f"s3://b/{name}", None, 10, _fetcher(b"x" * 10, []))
    (tmp_path / "junk.partial").write_bytes(b"half")
    again = LruCache(tmp_path, max_bytes=25)
    assert len(again) == 2 and again.size == 20


def test_too_large_and_short_fetches_are_errors(tmp_path: Path) -> None:
    cache = LruCache(tmp_path, max_bytes=10)
    with pytest.raises(StorageError, match="does not fit the local buffer"):
        cache.get_or_fetch("s3://b/big", None, 11, _fetcher(b"", []))
    with pytest.raises(StorageError, match="expected 5"):
        cache.get_or_fetch("s3://b/short", None, 5, _fetcher(b"abc", []))
    assert len(cache) == 0 and not any(tmp_path.iterdir())


def test_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOFLOW_BUFFER_DIR", str(tmp_path / "buf"))
    monkeypatch.setenv("ROBOFLOW_BUFFER_MAX_BYTES", "1234")
    cache = LruCache.from_env()
    assert cache.directory == tmp_path / "buf" and cache.max_bytes == 1234
