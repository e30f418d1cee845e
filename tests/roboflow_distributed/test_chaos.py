"""Chaos: worker processes are SIGKILLed again and again (and the etcd server once) mid-batch.

The batch must still complete with every recording's episode exactly once, each matching its
source frame by frame, and the one corrupt recording Dead with its reason.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests._servers import EtcdServer
from tests.roboflow_distributed._batch_helpers import FAST_ENV, config_text, corrupt, recordings
from tests.roboflow_pipeline.test_convert import run_doctor, verify_dataset

from roboflow_distributed.batches import get_batch, list_units, submit_batch
from roboflow_distributed.records import BatchPhase, UnitStatus
from roboflow_distributed.store import Store, open_store

ROBOFLOW = str(Path(sys.executable).parent / "roboflow")
N_RECORDINGS = 52
N_PODS = 3
KILLS = 8


class Pods:
    """``roboflow run --role all`` processes: started, SIGKILLed and restarted by the test."""

    def __init__(self, store_url: str, log_dir: Path) -> None:
        self.store_url = store_url
        self.log_dir = log_dir
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.generation = 0
        self.env = {**os.environ, **FAST_ENV}

    def start(self, slot: int, *, same_id: bool) -> None:
        self.generation += 1
        pod = f"pod-{slot}" if same_id else f"pod-{slot}-g{self.generation}"
        with (self.log_dir / f"{pod}-{self.generation}.log").open("wb") as log:
            self.procs[slot] = subprocess.Popen(
                [
                    ROBOFLOW,
                    "run",
                    "--role",
                    "all",
                    "--pod-id",
                    pod,
                    "--store",
                    self.store_url,
                    "--exit-when-idle",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self, slot: int) -> None:
        proc = self.procs[slot]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def wait_all(self, timeout: float = 60.0) -> list[int | None]:
        """Exit codes of the pods, which stop by themselves once the batch is done (--exit-when-idle)."""
        deadline = time.monotonic() + timeout
        codes: list[int | None] = []
        for proc in self.procs.values():
            try:
                codes.append(proc.wait(max(deadline - time.monotonic(), 0.1)))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                codes.append(None)
        return codes


def _phase(store: Store, batch: str) -> BatchPhase | None:
    try:
        return get_batch(store, batch).status.record.phase
    except Exception:  # the store may be down (etcd restart): ask again
        return None


def _finished_units(store: Store, batch: str) -> int:
    try:
        return sum(u.record.status.terminal for u in list_units(store, batch))
    except Exception:  # the store may be down (etcd restart)
        return 0


def run_chaos(store_url: str, tmp_path: Path, *, restart_store: object = None) -> None:
    rng = random.Random(7)
    recs = recordings(tmp_path / "in", N_RECORDINGS, base=0.3)
    bad = corrupt(recs[0].path, tmp_path / "in" / "rec_zzz_corrupt.mcap")
    output = tmp_path / "dataset"
    store = open_store(store_url)
    try:
        spec = submit_batch(store, [str(tmp_path / "in" / "*.mcap")], config_text(), str(output))
        logs = tmp_path / "logs"
        logs.mkdir()
        pods = Pods(store_url, logs)
        for slot in range(N_PODS):
            pods.start(slot, same_id=True)
        kills, store_restarted, merge_killed = 0, restart_store is None, False
        deadline = time.monotonic() + 420
        # kills are paced by progress (not time), so they land mid-batch however fast the machine is
        thresholds = [N_RECORDINGS * (k + 1) // (KILLS + 2) for k in range(KILLS)]
        while (phase := _phase(store, spec.id)) not in (BatchPhase.COMPLETE, BatchPhase.FAILED):
            assert time.monotonic() < deadline, f"the batch did not finish under chaos ({phase})"
            time.sleep(0.1)
            if kills < KILLS and _finished_units(store, spec.id) >= thresholds[kills]:
                slot = rng.randrange(N_PODS)
                pods.kill(slot)
                kills += 1
                pods.start(slot, same_id=rng.random() < 0.5)
            if not store_restarted and kills >= 3:
                restart_store()  # type: ignore[operator]
                store_restarted = True
            if phase is BatchPhase.MERGING and not merge_killed:
                time.sleep(0.3)  # let the merge publish a group or two, then kill every pod
                for slot in range(N_PODS):
                    pods.kill(slot)
                for slot in range(N_PODS):
                    pods.start(slot, same_id=False)
                merge_killed = True
        codes = pods.wait_all()
        status = get_batch(store, spec.id).status.record
        units = list_units(store, spec.id)
    finally:
        store.close()
    assert kills == KILLS and store_restarted, f"the batch finished before the chaos ({kills} kills)"
    assert merge_killed, "the merge finished before the pods could be killed during it"
    assert any(u.record.lost > 0 for u in units), "no kill hit a running unit: the test proved nothing"
    assert status.phase is BatchPhase.COMPLETE, status.error
    assert status.units_total == N_RECORDINGS + 1
    assert status.units_complete == N_RECORDINGS and status.units_dead == 1
    dead = [u.record for u in units if u.record.status is UnitStatus.DEAD]
    assert [u.source for u in dead] == [str(bad)] and "rec_zzz_corrupt.mcap" in (dead[0].error or "")
    assert all(code == 0 for code in codes), f"pods did not exit cleanly: {codes}"
    verify_dataset(output, recs)  # every episode exactly once, in source order, frame-exact
    run_doctor(output)


@pytest.mark.timeout(600)
def test_chaos_on_sqlite(tmp_path: Path) -> None:
    run_chaos(f"sqlite://{tmp_path / 'state.db'}", tmp_path)


@pytest.mark.etcd
@pytest.mark.timeout(600)
def test_chaos_on_etcd_with_a_server_restart(tmp_path: Path, etcd_clean: EtcdServer) -> None:
    def restart() -> None:
        etcd_clean.kill()
        time.sleep(1.5)
        etcd_clean.start()

    run_chaos(etcd_clean.url, tmp_path, restart_store=restart)
