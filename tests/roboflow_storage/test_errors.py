"""Clear, secret-free errors for missing buckets, wrong endpoints and bad URLs."""

from __future__ import annotations

import pickle
import socket
import time

import pytest
from tests._servers import TEST_SECRET, S3Bucket

from roboflow_core import StorageError
from roboflow_storage import ObjectExistsError, ObjectNotFoundError, Storage

from .conftest import FAST_RETRY


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _assert_clean(err: StorageError) -> None:
    text = f"{err} {err.reason} {err.context} {pickle.dumps(err)!r}"
    assert TEST_SECRET not in text
    assert "?" not in err.url


def test_missing_bucket_is_named(moto_server: str) -> None:
    storage = Storage.from_url(
        S3Bucket(endpoint=moto_server, name="no-such-bucket").url("x"), retry=FAST_RETRY
    )
    for call in (
        lambda: storage.get("a.mcap"),
        lambda: storage.put("a.mcap", b"1"),
        lambda: list(storage.list()),
    ):
        with pytest.raises(StorageError, match="bucket does not exist") as info:
            call()
        assert not isinstance(info.value, ObjectNotFoundError)
        assert info.value.url.startswith("s3://no-such-bucket/x")
        _assert_clean(info.value)


def test_wrong_endpoint_fails_fast_and_clearly(s3_bucket: S3Bucket) -> None:
    url = s3_bucket.url("x", endpoint=f"http://127.0.0.1:{_closed_port()}")
    storage = Storage.from_url(url, retry=FAST_RETRY)
    started = time.monotonic()
    with pytest.raises(StorageError, match="cannot reach the endpoint") as info:
        storage.get("a.mcap")
    assert time.monotonic() - started < 10
    assert info.value.url == f"s3://{s3_bucket.name}/x/a.mcap"
    _assert_clean(info.value)


def test_secret_from_environment_never_shows(monkeypatch: pytest.MonkeyPatch, moto_server: str) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    storage = Storage.from_url("s3://absent-bucket/p", retry=FAST_RETRY)
    assert TEST_SECRET not in repr(storage) and TEST_SECRET not in storage.url
    with pytest.raises(StorageError) as info:
        storage.get("k")
    _assert_clean(info.value)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("ftp://host/x", "unknown scheme"),
        ("s3:///prefix", "names no bucket"),
        ("s3://bucket/x?endpont=http://x", "unknown query parameter"),
        ("oss://bucket/x", "no OSS endpoint"),
    ],
)
def test_bad_urls(url: str, match: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OSS_ENDPOINT", raising=False)
    with pytest.raises(StorageError, match=match):
        Storage.from_url(url)


def test_query_secrets_are_not_shown_for_bad_parameters() -> None:
    with pytest.raises(StorageError) as info:
        Storage.from_url(f"s3://bucket/x?secret_access_key={TEST_SECRET}&bogus=1")
    _assert_clean(info.value)


@pytest.mark.parametrize("cls", [StorageError, ObjectNotFoundError, ObjectExistsError])
def test_errors_survive_pickle(cls: type[StorageError]) -> None:
    err = cls("get failed: no such object", url="s3://b/k")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is cls and str(again) == str(err) and again.url == "s3://b/k"


def test_storage_pickles_for_worker_processes(s3_bucket: S3Bucket) -> None:
    storage = Storage.from_url(
        s3_bucket.url("p"), retry=FAST_RETRY, download_part_size=3 << 20, download_concurrency=2
    )
    storage.put("k", b"v")
    again = pickle.loads(pickle.dumps(storage))
    assert again.url == storage.url and again.get("k") == b"v"
    assert (again.download_part_size, again.download_concurrency) == (3 << 20, 2)
