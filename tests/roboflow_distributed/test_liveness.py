"""Liveness without comparing clocks: heartbeats are judged by their store versions on the
reaper's own clock, and pods whose wall clocks are a minute off (libfaketime) neither lose their
units to a reaper nor take other pods' units.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.roboflow_distributed._batch_helpers import (
    FAST,
    FAST_ENV,
    ManualClock,
    config_text,
    recordings,
    wait_for,
)
from tests.roboflow_pipeline.test_convert import run_doctor, verify_dataset

from roboflow_core import StalledError
from roboflow_distributed import keys, transitions
from roboflow_distributed.batches import get_batch, list_units, submit_batch, unit_puts
from roboflow_distributed.reaper import Reaper
from roboflow_distributed.records import BatchPhase, Heartbeat, UnitStatus, WorkUnit, encode, scan
from roboflow_distributed.scanner import Scanner
from roboflow_distributed.store import Compare, Store, open_store
from roboflow_distributed.worker import Shutdown, Worker

ROBOFLOW = str(Path(sys.executable).parent / "roboflow")
LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))), None)


def _claimed(store: Store, tmp_path: Path, pods: list[str]) -> dict[str, WorkUnit]:
    """A batch with one unit per pod, each claimed by its pod (whose worker then does nothing)."""
    recs = recordings(tmp_path / "in", len(pods), base=0.2)
    spec = submit_batch(store, [str(r.path) for r in recs], config_text(), str(tmp_path / "ds"))
    Scanner(store, "s", FAST).tick()
    for pod in pods:
        assert Worker(store, pod, FAST, Shutdown(1.0)).claim() is not None
    return {u.record.owner or "": u.record for u in list_units(store, spec.id)}


def _beat(store: Store, pod: str, at: float, unit: WorkUnit | None = None, progress: int = 0) -> None:
    doing = f"{unit.batch}/{unit.id}" if unit is not None else None
    beat = Heartbeat(pod=pod, roles=["worker"], at=at, started_at=at, unit=doing, progress=progress)
    assert store.txn(puts={keys.heartbeat(pod): encode(beat)})


def _unit(store: Store, unit: WorkUnit) -> WorkUnit:
    (found,) = [u.record for u in list_units(store, unit.batch) if u.record.id == unit.id]
    return found


def test_the_reaper_goes_by_heartbeat_versions_on_its_own_clock_not_by_the_pods_clocks(
    store: Store, tmp_path: Path
) -> None:
    units = _claimed(store, tmp_path, ["behind", "ahead", "gone"])
    clock = ManualClock(0.0)
    reaper = Reaper(store, "r", FAST, clock=clock)
    now = time.time()
    _beat(store, "gone", now)
    for _ in range(6):  # 3 heartbeat timeouts on the reaper's clock
        _beat(store, "behind", now - 60)  # a pod whose clock is a minute behind (and stays there)
        _beat(store, "ahead", now + 60)
        reaper.tick()
        clock.now += FAST.heartbeat_timeout / 2
    behind, ahead, gone = (_unit(store, units[p]) for p in ("behind", "ahead", "gone"))
    assert (behind.status, behind.owner, behind.lost) == (UnitStatus.PROCESSING, "behind", 0)
    assert (ahead.status, ahead.owner, ahead.lost) == (UnitStatus.PROCESSING, "ahead", 0)
    assert (gone.status, gone.owner, gone.lost) == (UnitStatus.PENDING, None, 1)
    assert gone.error == "worker gone stopped heartbeating"
    clock.now += 10 * FAST.heartbeat_timeout  # a heartbeat standing still that long is forgotten
    _beat(store, "behind", now - 60)
    _beat(store, "ahead", now + 60)
    reaper.tick()
    assert sorted(b.record.pod for b in scan(store, keys.HEARTBEATS, Heartbeat)) == ["ahead", "behind"]


def test_a_fresh_reaper_waits_a_heartbeat_timeout_before_calling_a_pod_lost(
    store: Store, tmp_path: Path
) -> None:
    units = _claimed(store, tmp_path, ["quiet"])
    _beat(store, "quiet", time.time() - 3600)  # the last beat, an hour ago by the pod's clock
    clock = ManualClock(100.0)
    reaper = Reaper(store, "r", FAST, clock=clock)
    assert not reaper.tick(), "the reaper has not seen this heartbeat stand still yet"
    clock.now += FAST.heartbeat_timeout * 0.9
    assert not reaper.tick()
    clock.now += FAST.heartbeat_timeout * 0.2
    assert reaper.tick()
    assert _unit(store, units["quiet"]).status is UnitStatus.PENDING


def test_the_reaper_requeues_the_unit_of_a_beating_worker_that_makes_no_progress_on_it(
    store: Store, tmp_path: Path
) -> None:
    settings = dataclasses.replace(FAST, stall_timeout=5.0)
    units = _claimed(store, tmp_path, ["busy", "stuck"])
    clock = ManualClock(0.0)
    reaper = Reaper(store, "r", settings, clock=clock)
    now = time.time()
    limit = settings.stall_timeout + settings.heartbeat_timeout
    for step in range(int(limit) + 1):
        _beat(store, "busy", now, units["busy"], progress=100 * step)  # busy: progress grows
        _beat(store, "stuck", now, units["stuck"], progress=7)  # beating, but stuck
        requeued = reaper.tick()
        assert requeued == (step == int(limit)), f"at {clock.now} s"
        clock.now += 1.0
    busy, stuck = _unit(store, units["busy"]), _unit(store, units["stuck"])
    assert (busy.status, busy.owner, busy.attempts) == (UnitStatus.PROCESSING, "busy", 0)
    assert (stuck.status, stuck.owner, stuck.attempts, stuck.lost) == (UnitStatus.PENDING, None, 1, 0)
    assert stuck.error_kind == StalledError.__name__
    assert f"worker stuck made no progress on it for {limit:g} s" in (stuck.error or "")


def test_a_retry_backoff_is_waited_out_on_the_claiming_workers_own_clock(
    store: Store, tmp_path: Path
) -> None:
    unit = _claimed(store, tmp_path, ["w1"])["w1"]
    # w1's attempt failed transiently: back in the queue for 5 s of backoff (w1's clock is a day ahead)
    ukey = keys.unit(unit.batch, unit.id)
    (current,) = list_units(store, unit.batch)
    failed = transitions.fail(
        unit,
        error="store down",
        kind="StorageError",
        transient=True,
        retry_after=5.0,
        now=time.time() + 86400,
    )
    assert (failed.status, failed.owner, failed.attempts) == (UnitStatus.PENDING, None, 1)
    assert store.txn([Compare(ukey, current.version)], unit_puts(failed))
    clock = ManualClock(0.0)
    worker = Worker(store, "w2", FAST, Shutdown(1.0), clock=clock)
    assert worker.claim() is None, "the backoff starts when this worker first sees the unit queued"
    clock.now += 4.9
    assert worker.claim() is None
    clock.now += 0.2
    claimed = worker.claim()
    assert claimed is not None and (claimed.record.owner, claimed.record.retry_after) == ("w2", 0.0)


@pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime is not installed (make system-deps)")
@pytest.mark.timeout(300)
def test_pods_whose_clocks_are_a_minute_off_neither_lose_their_units_nor_take_others(tmp_path: Path) -> None:
    recs = recordings(tmp_path / "in", 12, base=0.3)
    url = f"sqlite://{tmp_path / 'state.db'}"
    logs = {pod: tmp_path / f"{pod}.log" for pod in ("behind", "ahead")}
    procs: list[subprocess.Popen[bytes]] = []
    command = [ROBOFLOW, "run", "--role", "all", "--store", url]
    store = open_store(url)
    try:
        for pod, offset in (("behind", "-60"), ("ahead", "+60")):
            env = {**os.environ, **FAST_ENV, "LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": offset}
            env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"  # monotonic clocks never cross pods anyway
            with logs[pod].open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [*command, "--pod-id", pod],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        wait_for(lambda: len(store.scan(keys.HEARTBEATS)) == 2, 120, "both pods' heartbeats")
        skew = {b.record.pod: b.record.at - time.time() for b in scan(store, keys.HEARTBEATS, Heartbeat)}
        assert -70 < skew["behind"] < -50 and 50 < skew["ahead"] < 70, f"libfaketime did not act: {skew}"
        spec = submit_batch(store, [str(tmp_path / "in" / "*.mcap")], config_text(), str(tmp_path / "ds"))
        wait_for(lambda: get_batch(store, spec.id).status.record.phase.terminal, 240, "the batch")
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(60) for proc in procs]
        status = get_batch(store, spec.id).status.record
        units = [u.record for u in list_units(store, spec.id)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        store.close()
    assert status.phase is BatchPhase.COMPLETE, status.error
    assert codes == [0, 0], {pod: path.read_text()[-2000:] for pod, path in logs.items()}
    assert [(u.lost, u.attempts) for u in units] == [(0, 0)] * len(recs), [u.error for u in units]
    assert {u.owner for u in units} == {"behind", "ahead"}, "both pods should have converted units"
    verify_dataset(tmp_path / "ds", recs)
    run_doctor(tmp_path / "ds")


def test_a_pod_that_crashes_leaves_its_threads_stacks_in_its_log(tmp_path: Path) -> None:
    """A segfault in native code (a codec, a store client) is diagnosable from the pod's log."""
    url = f"sqlite://{tmp_path / 'state.db'}"
    log = tmp_path / "pod.log"
    store = open_store(url)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [ROBOFLOW, "run", "--role", "worker", "--store", url, "--pod-id", "crashy"],
            env={**os.environ, **FAST_ENV},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: len(store.scan(keys.HEARTBEATS)) == 1, 120, "the pod's heartbeat")
        proc.send_signal(signal.SIGSEGV)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        store.close()
    text = log.read_text()
    assert code == -signal.SIGSEGV
    assert "Fatal Python error: Segmentation fault" in text and "most recent call first" in text, text[-2000:]
