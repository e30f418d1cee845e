"""The reaper role: give the units of lost workers back to the queue (the original forgot this)."""

from __future__ import annotations

import logging
import time

import msgspec

from roboflow_distributed import keys, metrics
from roboflow_distributed.batches import active_batches, list_units
from roboflow_distributed.records import BatchPhase, Heartbeat, UnitStatus, Versioned, WorkUnit, encode, scan
from roboflow_distributed.settings import Settings
from roboflow_distributed.store import Compare, Store

__all__ = ["Reaper", "requeue_lost"]

log = logging.getLogger("roboflow.reaper")

_RUNNING = (BatchPhase.DISCOVERING, BatchPhase.RUNNING)


def requeue_lost(store: Store, unit: Versioned[WorkUnit], reason: str, max_lost: int) -> bool:
    """Put a unit whose worker is gone back in the queue (or Dead after ``max_lost`` losses)."""
    rec = unit.record
    lost = rec.lost + 1
    ukey = keys.unit(rec.batch, rec.id)
    if lost >= max_lost:
        new = msgspec.structs.replace(
            rec,
            status=UnitStatus.DEAD,
            owner=None,
            lost=lost,
            error=f"{reason} ({lost} times)",
            error_kind="WorkerLost",
            updated_at=time.time(),
        )
        dead = store.txn([Compare(ukey, unit.version)], {ukey: encode(new)})
        if dead:
            metrics.JOBS.add(1, {"outcome": "dead"})
        return dead
    new = msgspec.structs.replace(
        rec,
        status=UnitStatus.PENDING,
        owner=None,
        lost=lost,
        error=reason,
        error_kind="WorkerLost",
        updated_at=time.time(),
    )
    requeued = store.txn(
        [Compare(ukey, unit.version)], {ukey: encode(new), keys.pending(rec.batch, rec.id): b""}
    )
    if requeued:
        metrics.REQUEUED.add(1)
        metrics.JOBS.add(1, {"outcome": "requeued"})
    return requeued


class Reaper:
    """Finds Processing units whose owner's heartbeat is missing or stale, and re-queues them."""

    def __init__(self, store: Store, pod: str, settings: Settings) -> None:
        self.store = store
        self.pod = pod
        self.settings = settings

    def tick(self) -> bool:
        """One sweep (which also sets the queue gauges); whether a unit was re-queued."""
        now = time.time()
        timeout = self.settings.heartbeat_timeout
        beats = {v.record.pod: v for v in scan(self.store, keys.HEARTBEATS, Heartbeat)}
        alive = {pod for pod, v in beats.items() if v.record.fresh(timeout, now)}
        requeued = 0
        phases = dict.fromkeys((p for p in BatchPhase if not p.terminal), 0)
        statuses = {UnitStatus.PENDING: 0, UnitStatus.PROCESSING: 0}
        for batch in active_batches(self.store):
            phase = batch.status.record.phase
            if phase in phases:  # not finished between the index scan and the read
                phases[phase] += 1
            if phase not in _RUNNING:
                continue
            for unit in list_units(self.store, batch.spec.id):
                status = unit.record.status
                if status in statuses:
                    statuses[status] += 1
                owner = unit.record.owner
                if status is not UnitStatus.PROCESSING or owner in alive:
                    continue
                reason = f"worker {owner} stopped heartbeating"
                if requeue_lost(self.store, unit, reason, self.settings.max_lost):
                    log.warning("re-queued %s: %s", unit.record.id, reason)
                    requeued += 1
        for pod, beat in beats.items():  # forget pods gone for long
            if beat.record.at < now - 10 * timeout:
                self.store.txn([Compare(keys.heartbeat(pod), beat.version)], deletes=[keys.heartbeat(pod)])
        workers = sum(1 for pod in alive if "worker" in beats[pod].record.roles)
        _set_gauges(phases, statuses, workers)
        return requeued > 0

    def release_own(self) -> int:
        """Re-queue units this pod id owned in an earlier life (a restarted pod keeps its id)."""
        count = 0
        processing = (
            unit
            for batch in active_batches(self.store)
            for unit in list_units(self.store, batch.spec.id, UnitStatus.PROCESSING)
        )
        for unit in processing:
            if unit.record.owner == self.pod and requeue_lost(
                self.store, unit, f"worker {self.pod} restarted", self.settings.max_lost
            ):
                count += 1
        return count


def _set_gauges(phases: dict[BatchPhase, int], statuses: dict[UnitStatus, int], workers: int) -> None:
    for phase, count in phases.items():
        metrics.BATCHES_ACTIVE.set(count, {"phase": str(phase)})
    metrics.QUEUE.set(statuses[UnitStatus.PENDING], {"status": "pending"})
    metrics.QUEUE.set(statuses[UnitStatus.PROCESSING], {"status": "running"})
    metrics.WORKERS_LIVE.set(workers)
