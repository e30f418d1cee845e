"""Storage's environment is read at once into StorageSettings; a bad value is a ConfigError that
names its variable, never a bare ValueError."""

from __future__ import annotations

import tempfile

import pytest

from roboflow_core import ConfigError
from roboflow_storage import Storage, StorageSettings

NUMBERS = [
    "ROBOFLOW_BUFFER_MAX_BYTES",
    "ROBOFLOW_DOWNLOAD_PART_BYTES",
    "ROBOFLOW_DOWNLOAD_CONCURRENCY",
    "ROBOFLOW_STORAGE_MAX_RETRIES",
    "ROBOFLOW_STORAGE_RETRY_TIMEOUT_SECS",
]


def test_defaults_and_values() -> None:
    assert StorageSettings.from_env({}) == StorageSettings(buffer_dir=tempfile.gettempdir())
    env = {
        "ROBOFLOW_BUFFER_DIR": "/buf",
        "ROBOFLOW_BUFFER_MAX_BYTES": "1234",
        "ROBOFLOW_DOWNLOAD_PART_BYTES": " 4096 ",
        "ROBOFLOW_DOWNLOAD_CONCURRENCY": "",  # blank: the default
        "ROBOFLOW_STORAGE_MAX_RETRIES": "0",  # no retries is a valid choice
        "ROBOFLOW_STORAGE_RETRY_TIMEOUT_SECS": "2.5",
    }
    settings = StorageSettings.from_env(env)
    assert settings == StorageSettings(
        buffer_dir="/buf",
        buffer_max_bytes=1234,
        download_part_bytes=4096,
        download_concurrency=StorageSettings(buffer_dir="").download_concurrency,
        max_retries=0,
        retry_timeout_s=2.5,
    )
    retry = settings.retry()
    assert (retry.max_retries, retry.retry_timeout_s) == (0, 2.5)


def test_allowed_endpoints_are_read_normalized() -> None:
    env = {"ROBOFLOW_ALLOWED_ENDPOINTS": "HTTP://127.0.0.1:80, minio.internal:443,,https://S3.example:9000"}
    assert StorageSettings.from_env(env).allowed_endpoints == {
        "http://127.0.0.1",
        "https://minio.internal",
        "https://s3.example:9000",
    }


@pytest.mark.parametrize("name", NUMBERS)
@pytest.mark.parametrize("text", ["lots", "-1", "1e400x", "nan"])
def test_a_bad_number_names_its_variable(name: str, text: str) -> None:
    with pytest.raises(ConfigError, match=rf"key={name}: must be a .*{text!r}"):
        StorageSettings.from_env({name: text})


@pytest.mark.parametrize("name", ["ROBOFLOW_BUFFER_MAX_BYTES", "ROBOFLOW_DOWNLOAD_CONCURRENCY"])
def test_sizes_and_counts_must_be_positive_whole_numbers(name: str) -> None:
    for text in ("0", "1.5"):
        with pytest.raises(ConfigError, match=name):
            StorageSettings.from_env({name: text})


def test_a_storage_takes_its_defaults_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOFLOW_STORAGE_MAX_RETRIES", "3")
    monkeypatch.setenv("ROBOFLOW_STORAGE_RETRY_TIMEOUT_SECS", "7")
    store = Storage.from_url("memory://test-settings")
    assert (store.retry.max_retries, store.retry.retry_timeout_s) == (3, 7.0)
    monkeypatch.setenv("ROBOFLOW_STORAGE_MAX_RETRIES", "three")
    with pytest.raises(ConfigError, match="ROBOFLOW_STORAGE_MAX_RETRIES"):
        Storage.from_url("memory://test-settings")
