from __future__ import annotations

import threading
from pathlib import Path

import pytest

from roboflow_core import StorageError
from roboflow_storage import LruCache, StorageSettings


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


def test_a_new_cache_adopts_nothing_it_did_not_write(tmp_path: Path) -> None:
    url = "s3://b/a.bag"
    first = LruCache(tmp_path, max_bytes=100)
    entry = first.get_or_fetch(url, "e", 10, _fetcher(b"1" * 10, []))
    # what another process (or someone else) leaves where a cache might look: never taken as a copy
    (tmp_path / LruCache.entry_name(url, "e")).write_bytes(b"planted!!!")
    (tmp_path / "roboflow-spool-planted").mkdir()
    (tmp_path / "roboflow-spool-planted" / LruCache.entry_name(url, "e")).write_bytes(b"planted!!!")
    again = LruCache(tmp_path, max_bytes=100)
    assert again.directory != first.directory and len(again) == 0
    calls: list[str] = []
    fresh = again.get_or_fetch(url, "e", 10, _fetcher(b"2" * 10, calls))
    assert calls and fresh.read_bytes() == b"2" * 10
    assert entry.read_bytes() == b"1" * 10  # the first cache's entry is its own, still there
    first.close()
    again.close()
    assert not entry.exists() and not fresh.exists()


def test_spool_is_private_and_never_writes_through_a_planted_link(tmp_path: Path) -> None:
    cache = LruCache(tmp_path / "spool-root", max_bytes=100)
    assert cache.directory.parent == tmp_path / "spool-root"
    assert cache.directory.stat().st_mode & 0o777 == 0o700
    entry = cache.get_or_fetch("s3://b/a", None, 3, _fetcher(b"abc", []))
    assert entry.parent == cache.directory and entry.stat().st_mode & 0o777 == 0o600
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    name = LruCache.entry_name("s3://b/link", None)
    partial = cache.directory / f"{name}.{threading.get_ident()}.partial"
    partial.symlink_to(victim)  # where the next download of s3://b/link would write
    calls: list[str] = []
    with pytest.raises(StorageError, match="cannot create the local copy"):
        cache.get_or_fetch("s3://b/link", None, 3, _fetcher(b"xyz", calls))
    assert not calls and victim.read_bytes() == b"keep me"
    assert partial.is_symlink()  # not ours: left alone
    assert len(cache) == 1


def test_too_large_and_short_fetches_are_errors(tmp_path: Path) -> None:
    cache = LruCache(tmp_path, max_bytes=10)
    with pytest.raises(StorageError, match="does not fit the local buffer"):
        cache.get_or_fetch("s3://b/big", None, 11, _fetcher(b"", []))
    with pytest.raises(StorageError, match="expected 5"):
        cache.get_or_fetch("s3://b/short", None, 5, _fetcher(b"abc", []))
    assert len(cache) == 0 and not any(cache.directory.iterdir())


def test_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOFLOW_BUFFER_DIR", str(tmp_path / "buf"))
    monkeypatch.setenv("ROBOFLOW_BUFFER_MAX_BYTES", "1234")
    settings = StorageSettings.from_env()
    cache = LruCache(settings.buffer_dir, max_bytes=settings.buffer_max_bytes)
    assert cache.directory.parent == tmp_path / "buf" and cache.max_bytes == 1234
    assert cache.directory.name.startswith("roboflow-spool-")
