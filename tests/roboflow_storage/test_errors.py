"""Clear, secret-free errors for missing buckets, wrong endpoints and bad URLs."""

from __future__ import annotations

import pickle
import socket
import time

import pytest
from tests._servers import TEST_SECRET, S3Bucket, allow_endpoint

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
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    restore = allow_endpoint(endpoint)
    try:
        storage = Storage.from_url(s3_bucket.url("x", endpoint=endpoint), retry=FAST_RETRY)
    finally:
        restore()
    started = time.monotonic()
    with pytest.raises(StorageError, match="cannot reach the endpoint") as info:
        storage.get("a.mcap")
    assert time.monotonic() - started < 10
    assert info.value.url == f"s3://{s3_bucket.name}/x/a.mcap" and info.value.transient
    _assert_clean(info.value)


def test_credentials_go_only_to_the_configured_or_listed_endpoints(
    monkeypatch: pytest.MonkeyPatch, s3_bucket: S3Bucket
) -> None:
    """A URL naming another endpoint would have the pod sign requests there with its own keys."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.example.com")
    monkeypatch.setenv("ROBOFLOW_ALLOWED_ENDPOINTS", "https://minio.internal:9000, http://127.0.0.1:1")
    Storage.from_url("s3://b/p")  # the configured endpoint
    Storage.from_url("s3://b/p?endpoint=https://S3.example.com:443/")  # the same, spelt otherwise
    Storage.from_url("s3://b/p?endpoint=https://minio.internal:9000")  # listed
    Storage.from_url("s3://b/p?endpoint=http://127.0.0.1:1")  # listed with http://
    with pytest.raises(StorageError, match=r"evil\.example\.net is not the one") as info:
        Storage.from_url("s3://b/p?endpoint=https://evil.example.net")
    assert "ROBOFLOW_ALLOWED_ENDPOINTS" in info.value.reason and not info.value.transient
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # AWS itself: any other endpoint must be listed
    with pytest.raises(StorageError, match="not the one this process's credentials are for"):
        Storage.from_url("s3://b/p?endpoint=https://evil.example.net")
    assert not info.value.transient


def test_plain_http_only_to_an_endpoint_listed_with_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio.internal:9000")
    monkeypatch.setenv("ROBOFLOW_ALLOWED_ENDPOINTS", "https://minio.internal:9000")
    with pytest.raises(StorageError, match=r"plain HTTP to http://minio\.internal:9000 is not allowed"):
        Storage.from_url("s3://b/p")
    monkeypatch.setenv("ROBOFLOW_ALLOWED_ENDPOINTS", "http://minio.internal:9000")
    Storage.from_url("s3://b/p")
    monkeypatch.setenv("OSS_ENDPOINT", "http://oss.internal")
    with pytest.raises(StorageError, match="plain HTTP"):
        Storage.from_url("oss://b/p")


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


def test_query_secrets_are_refused_and_not_shown() -> None:
    with pytest.raises(StorageError, match="credentials are not accepted") as info:
        Storage.from_url(f"s3://bucket/x?secret_access_key={TEST_SECRET}&bogus=1")
    _assert_clean(info.value)


@pytest.mark.parametrize("cls", [StorageError, ObjectNotFoundError, ObjectExistsError])
def test_errors_survive_pickle(cls: type[StorageError]) -> None:
    err = cls("get failed: no such object", url="s3://b/k")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is cls and str(again) == str(err) and again.url == "s3://b/k"


def test_storage_pickles_for_worker_processes(s3_bucket: S3Bucket) -> None:
    storage = Storage.from_url(s3_bucket.url("p"), retry=FAST_RETRY, part_size=6 << 20, max_concurrency=2)
    storage.put("k", b"v")
    again = pickle.loads(pickle.dumps(storage))
    assert again.url == storage.url and again.get("k") == b"v"
    assert (again.retry, again.part_size, again.max_concurrency) == (FAST_RETRY, 6 << 20, 2)
