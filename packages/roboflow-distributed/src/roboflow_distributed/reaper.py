"""The reaper role: give the units of lost or stuck workers back to the queue (the original forgot this).

A worker is lost when its heartbeat is missing or has stood still (same store version) for
``heartbeat_timeout`` on the reaper's own clock; it is stuck when it still beats but the progress
its heartbeat reports on its unit has stood still for the stall timeout plus the heartbeat timeout
(its own watchdog gives a stalled unit up after the stall timeout: this is the backstop for a pod
that cannot). No pod's wall clock is compared with another's (see
:mod:`roboflow_distributed.liveness`), so a fresh reaper waits a heartbeat timeout before it
calls a beating pod lost.
"""

from __future__ import annotations

import logging
import time

from roboflow_distributed import keys, metrics, transitions
from roboflow_distributed.batches import active_batches, list_units, unit_puts
from roboflow_distributed.liveness import Clock, Staleness
from roboflow_distributed.records import BatchPhase, Heartbeat, UnitStatus, Versioned, WorkUnit, scan
from roboflow_distributed.settings import Settings
from roboflow_distributed.store import Compare, Store

__all__ = ["Reaper", "release_unit", "requeue_lost", "requeue_stalled"]

log = logging.getLogger("roboflow.reaper")

_RUNNING = (BatchPhase.DISCOVERING, BatchPhase.RUNNING, BatchPhase.SUSPENDED)
_FORGET_AFTER = 10
"""Heartbeats standing still this many heartbeat timeouts are deleted (pods gone for long)."""


def _write(store: Store, unit: Versioned[WorkUnit], new: WorkUnit) -> bool:
    """Write a Processing unit's new record (Pending: queued again, or Dead) if it is still the one
    read; whether it was."""
    done = store.txn([Compare(keys.unit(new.batch, new.id), unit.version)], unit_puts(new))
    requeued = new.status is UnitStatus.PENDING
    if done:
        if requeued:
            metrics.REQUEUED.add(1)
        metrics.JOBS.add(1, {"outcome": "requeued" if requeued else "dead"})
    return done


def requeue_lost(store: Store, unit: Versioned[WorkUnit], reason: str, max_lost: int) -> bool:
    """Put a unit whose worker is gone back in the queue (or Dead after ``max_lost`` losses)."""
    return _write(
        store, unit, transitions.lose(unit.record, reason=reason, max_lost=max_lost, now=time.time())
    )


def release_unit(store: Store, unit: Versioned[WorkUnit], reason: str) -> bool:
    """Give a Processing unit back to the queue by choice (``batch suspend --release``): its worker
    drops the claim at its next checkpoint, and the next claim resumes after its staged segments.
    Counts neither as an attempt nor as a loss."""
    return _write(store, unit, transitions.release(unit.record, reason=reason, now=time.time()))


def requeue_stalled(store: Store, unit: Versioned[WorkUnit], reason: str) -> bool:
    """Put a unit whose conversion stopped making progress back in the queue: a failed attempt
    (Dead once its attempts are used up)."""
    return _write(store, unit, transitions.stall(unit.record, reason=reason, now=time.time()))


class Reaper:
    """Finds Processing units whose owner is lost or stuck, and re-queues them.

    Args:
        store: The coordination store.
        pod: This pod's id.
        settings: Timeouts.
        clock: The reaper's own monotonic clock.
    """

    def __init__(self, store: Store, pod: str, settings: Settings, *, clock: Clock = time.monotonic) -> None:
        self.store = store
        self.pod = pod
        self.settings = settings
        self._beats = Staleness(clock)
        self._progress = Staleness(clock)

    def tick(self) -> bool:
        """One sweep (which also sets the queue gauges); whether a unit was re-queued."""
        timeout = self.settings.heartbeat_timeout
        beats = {v.record.pod: v for v in scan(self.store, keys.HEARTBEATS, Heartbeat)}
        still = {pod: self._beats.age(keys.heartbeat(pod), v.version) for pod, v in beats.items()}
        self._beats.keep_only(keys.heartbeat(pod) for pod in beats)
        alive = {pod for pod, age in still.items() if age < timeout}
        stuck = self._stuck({pod: beats[pod].record for pod in alive})
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
                if status is not UnitStatus.PROCESSING:
                    continue
                if owner not in alive:
                    reason = f"worker {owner} stopped heartbeating"
                    done = requeue_lost(self.store, unit, reason, self.settings.max_lost)
                elif owner is not None and stuck.get(owner) == f"{unit.record.batch}/{unit.record.id}":
                    limit = self.settings.stall_timeout + timeout
                    reason = f"worker {owner} made no progress on it for {limit:g} s (stalled)"
                    done = requeue_stalled(self.store, unit, reason)
                else:
                    continue
                if done:
                    log.warning("re-queued %s: %s", unit.record.id, reason)
                    requeued += 1
        for pod, age in still.items():  # forget pods gone for long
            if age >= _FORGET_AFTER * timeout:
                key = keys.heartbeat(pod)
                self.store.txn([Compare(key, beats[pod].version)], deletes=[key])
        workers = sum(1 for pod in alive if "worker" in beats[pod].record.roles)
        _set_gauges(phases, statuses, workers)
        return requeued > 0

    def _stuck(self, beats: dict[str, Heartbeat]) -> dict[str, str]:
        """The unit (``batch/unit``) of each beating pod whose progress on it stood still too long."""
        limit = self.settings.stall_timeout + self.settings.heartbeat_timeout
        stuck: dict[str, str] = {}
        for pod, beat in beats.items():
            if beat.unit is not None and self._progress.age(pod, (beat.unit, beat.progress)) >= limit:
                stuck[pod] = beat.unit
        self._progress.keep_only(pod for pod, beat in beats.items() if beat.unit is not None)
        return stuck

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
