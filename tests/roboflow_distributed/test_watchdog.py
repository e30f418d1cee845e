"""The watchdog: a conversion that stalls or runs too long is abandoned, re-queued and converted
again, and the abandoned attempt publishes nothing.

The stalled source is a real FIFO named like a recording: reading it blocks for as long as the
test holds its write end open without writing. Pods run in threads against real stores.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest
from tests.roboflow_distributed._batch_helpers import (
    FAST,
    PodThread,
    claim_when_due,
    config_text,
    recordings,
    store,
    wait_finished,
    wait_for,
)
from tests.roboflow_pipeline.test_convert import run_doctor, verify_dataset

from roboflow_core import StalledError
from roboflow_distributed import keys
from roboflow_distributed.batches import list_units, submit_batch
from roboflow_distributed.finalizer import Finalizer
from roboflow_distributed.records import BatchPhase, Checkpoint, UnitStatus, WorkUnit, read
from roboflow_distributed.scanner import Scanner
from roboflow_distributed.store import Store
from roboflow_distributed.worker import Shutdown, Worker

__all__ = ["store"]


@pytest.mark.timeout(180)
def test_a_conversion_whose_source_blocks_is_requeued_after_the_stall_timeout_and_converted_by_another_pod(
    store: Store, tmp_path: Path
) -> None:
    (rec,) = recordings(tmp_path / "real", 1, base=0.4)
    source = tmp_path / "in" / "rec_000.mcap"
    source.parent.mkdir()
    os.mkfifo(source)
    writer = os.open(source, os.O_RDWR)  # a writer that never writes: every read of it blocks
    output = tmp_path / "ds"
    settings = dataclasses.replace(FAST, stall_timeout=3.0)
    spec = submit_batch(store, [str(source)], config_text(), str(output))
    stuck = PodThread(store, ["all"], "pod-a", settings=settings).start()
    other: PodThread | None = None
    try:
        wait_for(lambda: _status(store, spec.id) is UnitStatus.PROCESSING, 60, "pod-a's claim")
        (claimed,) = _units(store, spec.id)
        assert claimed.owner == "pod-a" and claimed.claims == 1
        wait_for(lambda: _status(store, spec.id) is UnitStatus.PENDING, 30, "the stall timeout")
        (requeued,) = _units(store, spec.id)
        assert requeued.attempts == 1 and requeued.error_kind == StalledError.__name__
        assert "no progress" in (requeued.error or "") and "WORKER_STALL_TIMEOUT_SECS" in (
            requeued.error or ""
        )
        # pod-a's conversion thread is still stuck reading the FIFO: pod-a claims nothing meanwhile,
        # and the recording is there for real now (pod-a keeps the FIFO it opened)
        copy = tmp_path / "in" / ".copy"
        shutil.copyfile(rec.path, copy)
        os.replace(copy, source)
        other = PodThread(store, ["worker"], "pod-b", settings=settings).start()
        status = wait_finished(store, spec.id)
    finally:
        os.close(writer)  # the stuck read ends (end of file): the abandoned thread stops
        for pod in (stuck, other):
            if pod is not None:
                pod.stop()
    assert status.phase is BatchPhase.COMPLETE, status.error
    (unit,) = _units(store, spec.id)
    assert (unit.status, unit.owner, unit.claims, unit.attempts) == (UnitStatus.COMPLETE, "pod-b", 2, 1)
    assert stuck.report is not None and stuck.report.units_completed == 0
    verify_dataset(output, [rec])
    run_doctor(output)
    assert not [p for p in Path(spec.staging).rglob("*") if p.is_file()], "staged files were left behind"


@pytest.mark.timeout(180)
def test_an_attempt_past_the_job_timeout_is_abandoned_and_publishes_nothing(
    store: Store, tmp_path: Path
) -> None:
    recs = recordings(tmp_path / "in", 1, base=1.0)
    output = tmp_path / "ds"
    spec = submit_batch(store, [str(recs[0].path)], config_text(), str(output))
    # a job timeout of 1 ms is past before the conversion reads its recording: the attempt is
    # abandoned while its thread carries on, up to its first progress mark
    hasty = dataclasses.replace(FAST, job_timeout=0.001, segment_frames=10)
    Scanner(store, "s", hasty).tick()
    worker = Worker(store, "w1", hasty, Shutdown(5.0))
    unit = worker.claim()
    assert unit is not None
    worker.process(unit)  # returns once the attempt is abandoned, while its thread may still run
    (back,) = _units(store, spec.id)
    assert (back.status, back.owner, back.attempts) == (UnitStatus.PENDING, None, 1)
    assert back.error_kind == StalledError.__name__ and "WORKER_JOB_TIMEOUT_SECS" in (back.error or "")
    assert worker.completed == 0
    (abandoned,) = worker._abandoned
    assert abandoned.thread is not None
    abandoned.thread.join(60)  # it stops at its next progress mark, writing nothing more
    assert not abandoned.thread.is_alive() and worker.wedged == 0
    again = read(store, keys.unit(spec.id, unit.record.id), WorkUnit)
    assert again is not None and again.record == back, "the abandoned attempt wrote its unit"
    assert read(store, keys.checkpoint(spec.id, unit.record.id), Checkpoint) is None, "it checkpointed"
    assert not [p for p in Path(spec.staging).rglob("*") if p.is_file()], "it uploaded staged files"
    # another worker (with the usual job timeout) converts it, and the batch completes
    second = Worker(store, "w2", FAST, Shutdown(5.0))
    claim = claim_when_due(second)
    assert claim.record.claims == 2
    second.process(claim)
    assert _units(store, spec.id)[0].status is UnitStatus.COMPLETE
    assert Finalizer(store, "f", FAST).tick() or Finalizer(store, "f", FAST).tick()
    verify_dataset(output, recs)


def _units(store: Store, batch: str) -> list[WorkUnit]:
    return [u.record for u in list_units(store, batch)]


def _status(store: Store, batch: str) -> UnitStatus | None:
    units = _units(store, batch)
    return units[0].status if units else None
