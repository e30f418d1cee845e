"""Permanent faults end a job dead on its first attempt; an object-store outage is retried.

A batch mixes good recordings with one recording per permanent fault class (a damaged file, a
hostile one, a missing topic, topics that never overlap, an undecodable image, an unknown
format): the bad jobs are dead after one attempt with their reason, the good ones complete, the
batch completes. Then the input store fails every request while a worker converts: the job goes
back to the queue (transient) and completes once the store is back.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from tests._servers import FaultProxy, S3Bucket, Schedule, fault_proxy, moto_server, s3_bucket
from tests.roboflow_dataset import _hostile as hostile
from tests.roboflow_distributed._batch_helpers import (
    FAST,
    PodThread,
    corrupt,
    recordings,
    wait_finished,
    wait_for,
)

from roboflow_core import StorageError
from roboflow_dataset.synth import ACTION_TOPIC, JOINT_TOPIC
from roboflow_distributed import scanner
from roboflow_distributed.batches import get_batch, list_batches, list_units, submit_batch
from roboflow_distributed.records import BatchPhase, UnitStatus
from roboflow_distributed.scanner import Scanner
from roboflow_distributed.store import SqliteStore
from roboflow_storage import RetryPolicy, Storage

__all__ = ["fault_proxy", "moto_server", "s3_bucket"]

CONFIG = f"""
[dataset]
name = "faults"
fps = 30

[[mappings]]
topic = "/cam"
feature = "observation.images.cam"
mapping_type = "image"
required = false

[[mappings]]
topic = "{JOINT_TOPIC}"
feature = "observation.state"

[[mappings]]
topic = "{ACTION_TOPIC}"
feature = "action"
mapping_type = "action"

[video]
codec = "libx264"
"""

# file name -> (craft, the error kind the dead job records)
FAULTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "truncated.mcap": (
        lambda p: corrupt(recordings(p.parent / "src", 1)[0].path, p),
        "CorruptRecordingError",
    ),
    "bz2_bomb.bag": (lambda p: hostile.ros1_bz2_bomb(p, declared=1 << 20), "RecordingLimitError"),
    "zstd_bomb.mcap": (lambda p: hostile.mcap_zstd_bomb(p, indexed=True), "RecordingLimitError"),
    "far_apart.mcap": (hostile.mcap_far_apart, "RecordingLimitError"),
    "max_log_time.mcap": (hostile.mcap_max_log_time, "RecordingLimitError"),
    "view_bag": (hostile.db3_recursive_view, "CorruptRecordingError"),
    "without_joints.mcap": (hostile.mcap_without_joints, "MissingTopicError"),
    "never_overlap.mcap": (hostile.mcap_never_overlap, "PipelineError"),
    "huge_png.mcap": (lambda p: hostile.mcap_huge_png(p, 12000, 12000), "DecodeError"),
    "not_a_recording.mcap": (lambda p: _text(p), "UnknownFormatError"),
}


def _text(path: Path) -> Path:
    path.write_text("hello, not an MCAP file\n" * 10, encoding="utf-8")
    return path


def test_every_permanent_fault_is_dead_on_its_first_attempt_and_the_batch_completes(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    good = recordings(inputs, 2)
    bad = {name: craft(inputs / name) for name, (craft, _) in FAULTS.items()}
    store = SqliteStore(tmp_path / "state.db")
    try:
        sources = [str(r.path) for r in good] + [str(p) for p in bad.values()]
        spec = submit_batch(store, sources, CONFIG, str(tmp_path / "out"), max_attempts=3)
        pods = [PodThread(store, ["all"], "pod-a").start(), PodThread(store, ["worker"], "pod-b").start()]
        status = wait_finished(store, spec.id, timeout=300)
        for pod in pods:
            pod.stop()
        assert status.phase is BatchPhase.COMPLETE, status.error
        units = {Path(u.record.source).name: u.record for u in list_units(store, spec.id)}
        for name, (_, kind) in FAULTS.items():
            unit = units[name]
            assert unit.status is UnitStatus.DEAD, (name, unit)
            assert unit.attempts == 1, f"{name} ({unit.error_kind}) was retried"
            assert unit.error_kind == kind, (name, unit.error)
            assert name in (unit.error or ""), unit.error
        assert [units[r.path.name].status for r in good] == [UnitStatus.COMPLETE] * 2
        assert (status.units_complete, status.units_dead, status.episodes) == (2, len(FAULTS), 2)
    finally:
        store.close()


@pytest.fixture
def outage(
    moto_server: str, fault_proxy: Callable[[Schedule], FaultProxy]
) -> tuple[FaultProxy, threading.Event]:
    """A proxy in front of moto that answers 503 to every request while the event is set."""
    down = threading.Event()
    proxy = fault_proxy(lambda _n, _method, _path: 503 if down.is_set() else None)
    return proxy, down


def test_an_object_store_outage_is_retried_and_the_job_completes(
    tmp_path: Path,
    s3_bucket: S3Bucket,
    outage: tuple[FaultProxy, threading.Event],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROBOFLOW_STORAGE_MAX_RETRIES", "0")  # each request fails at once while down
    proxy, down = outage
    local = recordings(tmp_path / "in", 1)[0].path
    Storage.from_url(s3_bucket.url("in")).put(local.name, local.read_bytes())
    store = SqliteStore(tmp_path / "state.db")
    try:
        source = s3_bucket.url(f"in/{local.name}", endpoint=proxy.endpoint)
        spec = submit_batch(store, [source], CONFIG, str(tmp_path / "out"), max_attempts=5)
        Scanner(store, "scanner", FAST).tick()  # discovered while the store is up
        down.set()
        # a backoff long enough that the outage is seen ending before the attempts are used up
        pod = PodThread(
            store, ["all"], "pod-a", settings=dataclasses.replace(FAST, retry_backoff=2.0)
        ).start()

        def failed_once() -> bool:
            (unit,) = list_units(store, spec.id)
            return unit.record.attempts >= 1

        wait_for(failed_once, 120, "the first attempt to fail on the outage")
        (unit,) = list_units(store, spec.id)
        assert unit.record.status in (UnitStatus.PENDING, UnitStatus.PROCESSING), unit.record
        assert unit.record.error_kind == "StorageError" and "503" in (unit.record.error or "")
        assert unit.record.retry_after > 0 or unit.record.status is UnitStatus.PROCESSING
        down.clear()
        status = wait_finished(store, spec.id, timeout=120)
        pod.stop()
        assert status.phase is BatchPhase.COMPLETE, status.error
        (unit,) = list_units(store, spec.id)
        assert unit.record.status is UnitStatus.COMPLETE and 1 <= unit.record.attempts < 5
        assert proxy.faults > 0
    finally:
        store.close()
        shutil.rmtree(tmp_path / "out", ignore_errors=True)


def test_submit_refuses_an_explicit_input_that_does_not_exist(tmp_path: Path, s3_bucket: S3Bucket) -> None:
    store = SqliteStore(tmp_path / "state.db")
    try:
        good = recordings(tmp_path / "in", 1)[0].path
        for missing, match in (
            (str(tmp_path / "in" / "gone.mcap"), "no such file or directory"),
            (s3_bucket.url("in/gone.mcap"), "no such object or prefix"),
        ):
            with pytest.raises(StorageError, match=match) as info:
                submit_batch(store, [str(good), missing], CONFIG, str(tmp_path / "out"))
            assert "gone.mcap" in str(info.value) and not info.value.transient
        assert list_batches(store) == [], "nothing was submitted"
        # a glob is matched at discovery, not at submit
        submit_batch(
            store, [str(good), str(tmp_path / "elsewhere" / "*.mcap")], CONFIG, str(tmp_path / "out")
        )
    finally:
        store.close()


def test_a_source_that_matches_nothing_is_a_dead_job_and_the_batch_completes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    try:
        good = recordings(tmp_path / "in", 1)[0].path
        nothing = str(tmp_path / "elsewhere" / "*.mcap")
        spec = submit_batch(store, [str(good), nothing], CONFIG, str(tmp_path / "out"))
        pod = PodThread(store, ["all"], "pod-a").start()
        status = wait_finished(store, spec.id)
        pod.stop()
        assert status.phase is BatchPhase.COMPLETE, status.error
        units = {u.record.source: u.record for u in list_units(store, spec.id)}
        assert units[str(good)].status is UnitStatus.COMPLETE
        assert units[nothing].status is UnitStatus.DEAD and "matches no recording" in (
            units[nothing].error or ""
        )
        assert units[nothing].attempts == 0 and (status.units_complete, status.units_dead) == (1, 1)
    finally:
        store.close()


def test_discovery_waits_out_a_transient_listing_error(
    tmp_path: Path,
    s3_bucket: S3Bucket,
    outage: tuple[FaultProxy, threading.Event],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROBOFLOW_STORAGE_MAX_RETRIES", "0")
    monkeypatch.setattr(scanner, "_DISCOVERY_RETRY", RetryPolicy(max_retries=1, initial_backoff_s=0.01))
    proxy, down = outage
    local = recordings(tmp_path / "in", 1)[0].path
    Storage.from_url(s3_bucket.url("in")).put(local.name, local.read_bytes())
    store = SqliteStore(tmp_path / "state.db")
    try:
        spec = submit_batch(
            store, [s3_bucket.url("in/*.mcap", endpoint=proxy.endpoint)], CONFIG, "memory://o/ds"
        )
        down.set()
        Scanner(store, "scanner", FAST).tick()
        assert get_batch(store, spec.id).status.record.phase is BatchPhase.DISCOVERING, "not failed"
        assert list_units(store, spec.id) == [] and proxy.faults >= 2
        down.clear()
        Scanner(store, "scanner", FAST).tick()
        batch = get_batch(store, spec.id).status.record
        assert batch.phase is BatchPhase.RUNNING and batch.units_total == 1
        assert [u.record.status for u in list_units(store, spec.id)] == [UnitStatus.PENDING]
    finally:
        store.close()
