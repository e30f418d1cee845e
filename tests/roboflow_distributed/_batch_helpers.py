"""Shared by the distributed tests: recordings, configs, fast settings, pods in threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from roboflow_dataset.synth import ACTION_TOPIC, JOINT_TOPIC, RecordingInfo, camera_topic, write_recording
from roboflow_distributed.batches import get_batch, list_units
from roboflow_distributed.records import BatchStatus, UnitStatus, Versioned, WorkUnit
from roboflow_distributed.runner import PodReport, Role, run_pod
from roboflow_distributed.settings import Settings
from roboflow_distributed.store import EtcdStore, SqliteStore, Store
from roboflow_distributed.worker import Shutdown, Worker

FAST = Settings(
    poll_interval=0.05,
    heartbeat_interval=0.2,
    heartbeat_timeout=2.0,
    checkpoint_interval_frames=5,
    checkpoint_interval_secs=0.2,
    lock_ttl=3.0,
    scan_interval=0.05,
    finalizer_interval=0.05,
    reaper_interval=0.2,
    shutdown_grace=5.0,
    retry_backoff=0.05,
)

FAST_ENV = {
    "WORKER_POLL_INTERVAL_SECS": "0.1",
    "WORKER_RETRY_BACKOFF_SECS": "0.1",
    "WORKER_HEARTBEAT_INTERVAL_SECS": "0.3",
    "ROBOFLOW_HEARTBEAT_TIMEOUT_SECS": "2",
    "ROBOFLOW_LOCK_TTL_SECS": "3",
    "SCANNER_SCAN_INTERVAL_SECS": "0.1",
    "FINALIZER_POLL_INTERVAL_SECS": "0.1",
    "ROBOFLOW_REAPER_INTERVAL_SECS": "0.3",
    "ROBOFLOW_MAX_LOST": "50",
    "WORKER_SEGMENT_FRAMES": "4",  # several segments per unit: kills exercise resume
    "FINALIZER_MERGE_GROUP": "4",  # the merge publishes in groups (chaos kills pods during it)
}


class ManualClock:
    """A monotonic clock that moves only when the test moves it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def config_text(cameras: Sequence[str] = ("cam_high",)) -> str:
    lines = ['[dataset]\nname = "t"\nfps = 30\nrobot_type = "synth"\ntask = "pick up the cube"']
    for cam in cameras:
        lines.append(
            f'[[mappings]]\ntopic = "{camera_topic(cam, False)}"\n'
            f'feature = "observation.images.{cam}"\nmapping_type = "image"'
        )
    lines.append(f'[[mappings]]\ntopic = "{JOINT_TOPIC}"\nfeature = "observation.state"')
    lines.append(f'[[mappings]]\ntopic = "{ACTION_TOPIC}"\nfeature = "action"\nmapping_type = "action"')
    lines.append('[video]\ncodec = "libx264"')
    return "\n".join(lines) + "\n"


def recordings(root: Path, n: int, *, base: float = 0.4) -> list[RecordingInfo]:
    """``n`` small recordings whose sorted names follow their order and whose lengths differ."""
    root.mkdir(parents=True, exist_ok=True)
    return [
        write_recording(root / f"rec_{i:03d}.mcap", "mcap", duration_s=base + 0.1 * (i % 4), seed=i)
        for i in range(n)
    ]


def corrupt(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


class PodThread:
    """A pod running in a thread of the test process (no signals), stopped through its Shutdown."""

    def __init__(
        self,
        store: Store,
        roles: Sequence[Role],
        pod: str,
        *,
        exit_when_idle: bool = True,
        settings: Settings = FAST,
    ) -> None:
        self.shutdown = Shutdown(settings.shutdown_grace)
        self.settings = settings
        self.report: PodReport | None = None
        self.thread = threading.Thread(
            target=self._run, args=(store, roles, pod, exit_when_idle), name=f"pod-{pod}", daemon=True
        )

    def _run(self, store: Store, roles: Sequence[Role], pod: str, exit_when_idle: bool) -> None:
        self.report = run_pod(
            store,
            roles,
            pod=pod,
            settings=self.settings,
            exit_when_idle=exit_when_idle,
            install_signals=False,
            shutdown=self.shutdown,
        )

    def start(self) -> PodThread:
        self.thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.shutdown.request()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "pod did not stop"


def claim_when_due(worker: Worker, timeout: float = 30.0) -> Versioned[WorkUnit]:
    """The worker's claim of a queued unit, once its retry backoff is over (on the worker's clock)."""
    deadline = time.monotonic() + timeout
    while (claim := worker.claim()) is None:
        assert time.monotonic() < deadline, "no queued unit was claimed"
        time.sleep(0.05)
    return claim


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wait_finished(store: Store, batch_id: str, timeout: float = 120.0) -> BatchStatus:
    wait_for(lambda: get_batch(store, batch_id).status.record.phase.terminal, timeout, f"batch {batch_id}")
    return get_batch(store, batch_id).status.record


def convert_units(store: Store, batch_id: str, done: Callable[[list[UnitStatus]], bool]) -> None:
    """Run a scanner + worker pod until the batch's unit statuses satisfy ``done`` (nothing merges)."""
    pod = PodThread(store, ["scanner", "worker"], "w", exit_when_idle=False).start()
    try:
        wait_for(lambda: done([u.record.status for u in list_units(store, batch_id)]), 120, "units")
    finally:
        pod.stop()


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty SQLite or etcd store (the batch tests run on both); closed after the test."""
    if request.param == "sqlite":
        s: Store = SqliteStore(tmp_path / "state" / "state.db")
    else:
        s = EtcdStore(request.getfixturevalue("etcd_clean").endpoint)
    yield s
    s.close()
