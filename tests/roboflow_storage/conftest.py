"""Storages for the conformance tests: memory, a local directory and S3 on a moto server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from tests._servers import S3Bucket, fault_proxy, moto_server, s3_bucket

from roboflow_storage import RetryPolicy, Storage

__all__ = ["FAST_RETRY", "fault_proxy", "moto_server", "s3_bucket"]

#: Short backoffs and timeouts so retry and error tests finish in seconds.
FAST_RETRY = RetryPolicy(
    max_retries=4, initial_backoff_s=0.01, max_backoff_s=0.05, retry_timeout_s=10, connect_timeout_s=1
)


@pytest.fixture(params=["memory", "local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """The same empty root on each kind of store."""
    if request.param == "memory":
        return Storage.from_url(f"memory://{uuid.uuid4().hex}/root", retry=FAST_RETRY)
    if request.param == "local":
        return Storage.from_url(tmp_path / "root", retry=FAST_RETRY)
    bucket: S3Bucket = request.getfixturevalue("s3_bucket")
    return Storage.from_url(bucket.url("root"), retry=FAST_RETRY)
