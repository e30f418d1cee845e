"""WORKER_MAX_CONCURRENT_JOBS: a pod converts N jobs at once, each in a process of its own; killing the
pod leaves no orphan converting and loses or duplicates no episode (real pods as processes, a real
SQLite store, real recordings read back frame by frame)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.roboflow_distributed._batch_helpers import FAST_ENV, config_text, recordings, wait_for
from tests.roboflow_pipeline.test_convert import run_doctor, verify_dataset

from roboflow_distributed import keys
from roboflow_distributed.batches import get_batch, list_units, submit_batch
from roboflow_distributed.records import BatchPhase, Heartbeat, UnitStatus, scan
from roboflow_distributed.store import open_store

ROBOFLOW = [sys.executable, "-c", "import sys; from roboflow_cli.main import cli; sys.exit(cli())"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timeout(400)
def test_n_jobs_at_once_in_their_own_processes_and_a_killed_pod_duplicates_nothing(tmp_path: Path) -> None:
    # enough recordings that some are still queued when the pod is killed, however fast the machine
    recs = recordings(tmp_path / "in", 12, base=0.8)
    url = f"sqlite://{tmp_path / 'state.db'}"
    env = {**os.environ, **FAST_ENV, "ROBOFLOW_STORE": url, "WORKER_SEGMENT_FRAMES": "6"}
    store = open_store(url)
    first: subprocess.Popen[bytes] | None = None
    try:
        batch = submit_batch(store, [str(tmp_path / "in" / "*.mcap")], config_text(), str(tmp_path / "ds")).id
        with (tmp_path / "a.log").open("wb") as log:  # the pod keeps its own copy of the descriptor
            first = subprocess.Popen(
                [*ROBOFLOW, "run", "--pod-id", "a"],
                env={**env, "WORKER_MAX_CONCURRENT_JOBS": "3"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        slots: dict[str, int] = {}

        def three_slots() -> bool:
            slots.update({b.record.pod: b.record.pid for b in scan(store, keys.HEARTBEATS, Heartbeat)})
            return {"a.0", "a.1", "a.2"} <= set(slots)

        wait_for(three_slots, 120, "three worker processes' heartbeats")
        pids = {slots[f"a.{i}"] for i in range(3)}
        assert len(pids) == 3 and first.pid not in pids, slots
        assert "worker" not in next(
            b.record.roles for b in scan(store, keys.HEARTBEATS, Heartbeat) if b.record.pod == "a"
        ), "the pod's own heartbeat does not count as a worker"
        busy: set[str] = set()

        def two_at_once() -> bool:
            owners = {u.record.owner for u in list_units(store, batch, UnitStatus.PROCESSING)}
            busy.update(o for o in owners if o)
            return len(owners) >= 2

        wait_for(two_at_once, 120, "two jobs converting at once")
        assert busy <= {"a.0", "a.1", "a.2"}
        first.send_signal(signal.SIGKILL)  # no chance to stop its worker processes
        first.wait(30)
        wait_for(lambda: not any(_alive(pid) for pid in pids), 30, "the orphaned worker processes to stop")
        left = [u.record for u in list_units(store, batch)]
        assert not [u for u in left if u.status is UnitStatus.PROCESSING], "they gave their jobs back"

        second = subprocess.run(
            [*ROBOFLOW, "run", "--pod-id", "b", "--exit-when-idle"],
            env={**env, "WORKER_MAX_CONCURRENT_JOBS": "2"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        done = sum(u.status is UnitStatus.COMPLETE for u in left)
        assert f"pod b: {len(recs) - done} job(s) converted" in second.stdout
        status = get_batch(store, batch).status.record
        units = [u.record for u in list_units(store, batch)]
    finally:
        if first is not None and first.poll() is None:
            first.kill()
            first.wait()
        store.close()
    assert status.phase is BatchPhase.COMPLETE and status.episodes == len(recs)
    assert {u.owner for u in units} <= {"a.0", "a.1", "a.2", "b.0", "b.1"}
    assert any(u.owner and u.owner.startswith("b.") for u in units)
    verify_dataset(tmp_path / "ds", recs)  # every recording exactly once, frame-exact
    run_doctor(tmp_path / "ds")
