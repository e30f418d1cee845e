"""Transient faults are retried away; permanent ones give a clear error and no partial object."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest
from tests._servers import FaultProxy, S3Bucket, Schedule, always, every_kth, first_n, multipart_uploads

from roboflow_core import StorageError
from roboflow_storage import Storage

from .conftest import FAST_RETRY

MIB = 1 << 20
StartProxy = Callable[[Schedule], FaultProxy]


def _through(proxy: FaultProxy, bucket: S3Bucket, **kwargs: int) -> Storage:
    return Storage.from_url(bucket.url("p", endpoint=proxy.endpoint), retry=FAST_RETRY, **kwargs)


@pytest.mark.parametrize("fault", [503, 500, "drop"])
def test_reads_survive_transient_faults(
    fault: int | str, s3_bucket: S3Bucket, fault_proxy: StartProxy
) -> None:
    data = random.Random(0).randbytes(2 * MIB)
    Storage.from_url(s3_bucket.url("p")).put("rec.mcap", data)
    proxy = fault_proxy(every_kth(2, fault))  # type: ignore[arg-type]
    storage = _through(proxy, s3_bucket)
    assert storage.get("rec.mcap") == data
    assert storage.get_range("rec.mcap", 10, 20) == data[10:20]
    with storage.open_reader("rec.mcap", block_size=256 * 1024) as reader:
        assert reader.read() == data
    assert proxy.faults >= 3


@pytest.mark.parametrize("fault", [503, "drop"])
def test_multipart_upload_survives_transient_faults(
    fault: int | str, s3_bucket: S3Bucket, fault_proxy: StartProxy
) -> None:
    data = random.Random(1).randbytes(12 * MIB)
    proxy = fault_proxy(every_kth(3, fault))  # type: ignore[arg-type]
    storage = _through(proxy, s3_bucket, part_size=5 * MIB)
    with storage.open_writer("episode.parquet") as out:
        out.write(data)
    assert proxy.faults >= 2
    assert Storage.from_url(s3_bucket.url("p")).get("episode.parquet") == data


def test_first_requests_failing_then_conditional_put(s3_bucket: S3Bucket, fault_proxy: StartProxy) -> None:
    proxy = fault_proxy(first_n(3))
    storage = _through(proxy, s3_bucket)
    storage.put("marker", b"done", mode="create")
    assert proxy.faults == 3 and storage.get("marker") == b"done"


@pytest.mark.parametrize(
    ("fault", "match"), [(503, "SlowDown"), ("drop", "failed"), (403, "permission denied")]
)
def test_permanent_fault_is_a_clear_error(
    fault: int | str, match: str, s3_bucket: S3Bucket, fault_proxy: StartProxy
) -> None:
    storage = _through(fault_proxy(always(fault)), s3_bucket)  # type: ignore[arg-type]
    with pytest.raises(StorageError, match=match) as info:
        storage.get("rec.mcap")
    assert info.value.url == f"s3://{s3_bucket.name}/p/rec.mcap"


def test_permanent_fault_during_upload_leaves_no_object(s3_bucket: S3Bucket, fault_proxy: StartProxy) -> None:
    def parts_fail(n: int, method: str, path: str) -> int | None:
        return 503 if "partNumber=2" in path else None

    storage = _through(fault_proxy(parts_fail), s3_bucket, part_size=5 * MIB)
    with pytest.raises(StorageError, match="upload"), storage.open_writer("episode.parquet") as out:
        out.write(random.Random(2).randbytes(12 * MIB))
    assert not Storage.from_url(s3_bucket.url("p")).exists("episode.parquet")
    assert multipart_uploads(s3_bucket) == []  # aborted, not left behind


def test_in_progress_uploads_are_seen_by_the_check(s3_bucket: S3Bucket) -> None:
    storage = Storage.from_url(s3_bucket.url("p"), part_size=5 * MIB)
    out = storage.open_writer("slow.bin")
    out.write(random.Random(3).randbytes(11 * MIB))
    deadline = time.monotonic() + 10  # parts go up in the background
    while not multipart_uploads(s3_bucket) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert multipart_uploads(s3_bucket) == ["p/slow.bin"]
    out.abort()
    assert multipart_uploads(s3_bucket) == []
