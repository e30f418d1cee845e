"""The dataset writer lock: one writer at a time, a dead local writer's lock is broken, a lease in
an object store is renewed by its holder and taken over once it expires, the distributed
finalizer may take over the lock of a finalizer with a lower fencing token."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests._servers import FaultProxy, S3Bucket, Schedule, fault_proxy, moto_server, s3_bucket
from tests.roboflow_pipeline.test_convert import make_config, verify_dataset
from tests.roboflow_pipeline.test_convert_s3 import FAST_RETRY

from roboflow_core import ConfigError, DatasetError
from roboflow_dataset.synth import write_recording
from roboflow_pipeline import DatasetLock, convert
from roboflow_pipeline._lock import LOCK_KEY
from roboflow_pipeline._publish import RemoteDataset
from roboflow_storage import Storage

__all__ = ["fault_proxy", "moto_server", "s3_bucket"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(
    storage: Storage,
    owner: str,
    pid: int,
    host: str | None = None,
    expires: float | None = None,
    fencing: int | None = None,
) -> None:
    info: dict[str, object] = {"owner": owner, "host": host or socket.gethostname(), "pid": pid, "since": 1.0}
    if expires is not None:
        info["expires"] = expires
    if fencing is not None:
        info["fencing"] = fencing
    storage.put(LOCK_KEY, json.dumps(info).encode())


def _holder(storage: Storage) -> dict[str, object]:
    return dict(json.loads(storage.get(LOCK_KEY)))


def _lost(lock: DatasetLock, timeout: float = 10.0) -> DatasetError:
    """The error :meth:`DatasetLock.check` raises once the lock counts as lost (waits for it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            lock.check()
        except DatasetError as err:
            return err
        assert time.monotonic() < deadline, "the lock never counted as lost"
        time.sleep(0.05)


def _check_locking(storage: Storage) -> None:
    locked = r"being written by first .* delete .*\.roboflow-lock"
    with DatasetLock(storage, "first"), pytest.raises(DatasetError, match=locked):
        DatasetLock(storage, "second").__enter__()
    assert not storage.exists(LOCK_KEY), "the lock is released"
    _write_lock(storage, "crashed", _dead_pid())
    with DatasetLock(storage, "third"):  # its process is gone: broken
        assert json.loads(storage.get(LOCK_KEY))["owner"] == "third"
    _write_lock(storage, "roboflow finalizer pod-1", os.getpid(), host="elsewhere", fencing=4)
    with pytest.raises(DatasetError):
        DatasetLock(storage, "x").__enter__()  # no token: never supersedes
    for same_or_older in (4, 3):
        with pytest.raises(DatasetError, match="pod-1"):
            DatasetLock(storage, "roboflow finalizer pod-0", fencing=same_or_older).__enter__()
    with DatasetLock(storage, "roboflow finalizer pod-2", fencing=5):  # a later holder of the lease
        assert _holder(storage)["fencing"] == 5
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


@pytest.mark.object_store
def test_a_lease_in_s3_is_taken_over_only_once_it_expired(s3_bucket: S3Bucket) -> None:
    storage = Storage.from_url(s3_bucket.url("datasets/leased"))
    _write_lock(storage, "live writer", 1, host="elsewhere", expires=time.time() + 60)
    with pytest.raises(DatasetError, match=r"being written by live writer .*expires at"):
        DatasetLock(storage, "x").__enter__()
    assert _holder(storage)["owner"] == "live writer"
    _write_lock(storage, "stopped writer", 1, host="elsewhere", expires=time.time() - 1)
    with DatasetLock(storage, "next writer", ttl=30):
        held = _holder(storage)
        assert held["owner"] == "next writer"
        assert float(str(held["expires"])) > time.time() + 20
    assert not storage.exists(LOCK_KEY)


@pytest.mark.object_store
def test_the_holder_renews_its_lease_so_nobody_takes_it(s3_bucket: S3Bucket) -> None:
    storage = Storage.from_url(s3_bucket.url("datasets/renewed"))
    with DatasetLock(storage, "long writer", ttl=1.2) as lock:
        first = float(str(_holder(storage)["expires"]))
        time.sleep(2.0)  # longer than the ttl: only renewals keep it
        assert float(str(_holder(storage)["expires"])) > first
        with pytest.raises(DatasetError, match="being written by long writer"):
            DatasetLock(storage, "other").__enter__()
        lock.check()
    assert not storage.exists(LOCK_KEY)


@pytest.mark.object_store
def test_a_writer_whose_lease_was_taken_over_stops_and_leaves_the_new_lock(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    storage = Storage.from_url(s3_bucket.url("datasets/taken"))
    with DatasetLock(storage, "slow writer", ttl=2.0) as lock:
        _write_lock(storage, "new writer", 1, host="elsewhere", expires=time.time() + 60)
        # the next renewal finds the lock changed
        assert "another writer took it over" in str(_lost(lock))
        # a publish checks before each step: nothing of this writer's dataset becomes visible
        rec = write_recording(tmp_path / "a.mcap", "mcap", duration_s=0.5)
        convert([rec.path], make_config(rec.cameras), tmp_path / "local")
        with RemoteDataset(storage) as publisher:
            shutil.copytree(tmp_path / "local", publisher.root, dirs_exist_ok=True)
            with pytest.raises(DatasetError, match="lost the dataset's writer lock"):
                publisher.publish(lock.check)
    assert _holder(storage)["owner"] == "new writer", "the new holder's lock was removed"
    assert [info.key for info in storage.list()] == [LOCK_KEY]


@pytest.mark.object_store
def test_a_lease_not_renewed_for_its_ttl_counts_as_lost(
    s3_bucket: S3Bucket, fault_proxy: Callable[[Schedule], FaultProxy]
) -> None:
    cut = threading.Event()
    proxy = fault_proxy(lambda _n, _method, _path: 503 if cut.is_set() else None)
    storage = Storage.from_url(s3_bucket.url("datasets/stale", endpoint=proxy.endpoint), retry=FAST_RETRY)
    with DatasetLock(storage, "cut off", ttl=0.6) as lock:
        cut.set()  # the store stops answering: renewals fail until the lease ran out
        assert "could not be renewed for 0.6 s" in str(_lost(lock))
        cut.clear()


def _break_dead_lock(
    storage: Storage, name: str, start: threading.Barrier, holding: threading.Barrier, won: list[str]
) -> None:
    start.wait()
    try:
        with DatasetLock(storage, name):
            won.append(name)
            holding.wait()  # held until the other one has tried
    except DatasetError:
        holding.wait()


@pytest.mark.parametrize("where", ["local", pytest.param("s3", marks=pytest.mark.object_store)])
def test_two_writers_breaking_one_dead_lock_never_both_win(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    for attempt in range(30):
        if where == "s3":
            bucket: S3Bucket = request.getfixturevalue("s3_bucket")
            storage = Storage.from_url(bucket.url(f"datasets/race-{attempt}"))
        else:
            storage = Storage.from_url(str(tmp_path / f"ds{attempt}"))
        _write_lock(storage, "crashed", _dead_pid())
        start, holding, won = threading.Barrier(2), threading.Barrier(2, timeout=10), []
        racers = [
            threading.Thread(target=_break_dead_lock, args=(storage, name, start, holding, won))
            for name in ("left", "right")
        ]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(30)
        assert len(won) == 1, f"attempt {attempt}: {won or 'nobody'} took the lock"
        assert not storage.exists(LOCK_KEY), "the winner released it"


def test_a_bad_lock_ttl_in_the_environment_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = Storage.from_url(str(tmp_path / "ds"))
    for bad in ("soon", "0", "-5"):
        monkeypatch.setenv("ROBOFLOW_DATASET_LOCK_TTL_SECS", bad)
        with pytest.raises(ConfigError, match=r"ROBOFLOW_DATASET_LOCK_TTL_SECS.*positive number"):
            DatasetLock(storage, "x")
    monkeypatch.setenv("ROBOFLOW_DATASET_LOCK_TTL_SECS", "45")
    assert DatasetLock(storage, "x").ttl == 45.0


def test_a_local_writer_notices_at_its_next_check_that_its_lock_was_taken(tmp_path: Path) -> None:
    storage = Storage.from_url(str(tmp_path / "ds"))
    first = DatasetLock(storage, "roboflow finalizer pod-1", fencing=1).__enter__()
    first.check()  # still its own
    # a later holder of the dataset's lease takes the lock over
    with (
        DatasetLock(storage, "roboflow finalizer pod-2", fencing=2),
        pytest.raises(DatasetError, match="pod-2"),
    ):
        first.check()
    with pytest.raises(DatasetError, match="lost the dataset's writer lock"):
        first.check()
