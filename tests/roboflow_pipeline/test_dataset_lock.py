"""The dataset writer lock: one writer at a time, a dead local writer's lock is broken, the
distributed finalizer may take over another finalizer's lock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tests._servers import S3Bucket, moto_server, s3_bucket
from tests.roboflow_pipeline.test_convert import make_config, verify_dataset

from roboflow_core import DatasetError
from roboflow_dataset.synth import write_recording
from roboflow_pipeline import DatasetLock, convert
from roboflow_pipeline._lock import LOCK_KEY
from roboflow_storage import Storage

__all__ = ["moto_server", "s3_bucket"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(storage: Storage, owner: str, pid: int, host: str | None = None) -> None:
    info = {"owner": owner, "host": host or socket.gethostname(), "pid": pid, "since": 1.0}
    storage.put(LOCK_KEY, json.dumps(info).encode())


def _check_locking(storage: Storage) -> None:
    locked = r"being written by first .* delete .*\.roboflow-lock"
    with DatasetLock(storage, "first"), pytest.raises(DatasetError, match=locked):
        DatasetLock(storage, "second").__enter__()
    assert not storage.exists(LOCK_KEY), "the lock is released"
    _write_lock(storage, "crashed", _dead_pid())
    with DatasetLock(storage, "third"):  # its process is gone: broken
        assert json.loads(storage.get(LOCK_KEY))["owner"] == "third"
    _write_lock(storage, "roboflow finalizer pod-1", os.getpid(), host="elsewhere")
    with pytest.raises(DatasetError):
        DatasetLock(storage, "x").__enter__()
    with DatasetLock(
        storage, "roboflow finalizer pod-2", breakable=lambda i: i.owner.startswith("roboflow finalizer")
    ):
        pass
    assert not storage.exists(LOCK_KEY)


def test_lock_on_a_local_dataset(tmp_path: Path) -> None:
    _check_locking(Storage.from_url(str(tmp_path / "ds")))


@pytest.mark.object_store
def test_lock_on_a_dataset_in_s3(s3_bucket: S3Bucket) -> None:
    _check_locking(Storage.from_url(s3_bucket.url("datasets/ds")))


def test_convert_refuses_a_dataset_another_writer_holds(tmp_path: Path) -> None:
    rec = write_recording(tmp_path / "a.mcap", "mcap", duration_s=0.5)
    output = tmp_path / "ds"
    config = make_config(rec.cameras)
    convert([rec.path], config, output)
    _write_lock(Storage.from_url(str(output)), "another convert", os.getpid())
    with pytest.raises(DatasetError, match="being written by another convert"):
        convert([rec.path], config, output)
    Storage.from_url(str(output)).delete(LOCK_KEY)
    verify_dataset(output, [rec])  # untouched by the refused conversion
    assert not (output / LOCK_KEY).exists()
