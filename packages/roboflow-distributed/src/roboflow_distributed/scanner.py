"""The scanner role (one leader at a time, by lease): expand each new batch's sources into work units.

Discovery is idempotent: a unit's id is a hash of (recording URL, size, config hash) and each unit
is created only if absent, so a scanner that dies mid-discovery leaves nothing for the next leader
to undo, and the same recording named twice in a batch becomes one unit.

One bad input never fails the batch: a source that cannot be expanded (a glob matching nothing,
an object gone since submit) or a recording whose size cannot be read becomes a Dead unit with
the reason, and the others are converted. A transient failure (the object store unreachable
after its own retries) is retried with backoff, and failing still, on the next tick: the batch
stays Discovering meanwhile.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from typing import TypeVar

import msgspec

from roboflow_core import RoboflowError
from roboflow_distributed import keys
from roboflow_distributed.batches import Batch, active_batches, failure_reason, set_phase
from roboflow_distributed.locks import Lease
from roboflow_distributed.metrics import RECORDINGS_DISCOVERED
from roboflow_distributed.records import BatchPhase, BatchSpec, UnitStatus, WorkUnit, encode
from roboflow_distributed.settings import Settings
from roboflow_distributed.store import ABSENT, Compare, Store
from roboflow_storage import RetryPolicy, display_url, recording_bytes, resolve_inputs, retry_call

__all__ = ["Scanner", "unit_id"]

log = logging.getLogger("roboflow.scanner")

_TXN_UNITS = 40
"""Units created per transaction (2 puts + 1 compare each; etcd allows 128 operations per txn)."""
_DISCOVERY_RETRY = RetryPolicy(max_retries=3, initial_backoff_s=0.5, max_backoff_s=5.0, retry_timeout_s=30.0)
"""Retries of one listing or size (each request already retried by the object store client)."""
_T = TypeVar("_T")


class _Transient(Exception):
    """Discovery met a transient failure: leave the batch Discovering and try again later."""


def unit_id(url: str, size: int, config_hash: str) -> str:
    """The id of the unit converting ``url`` (of ``size`` bytes) with a config."""
    return hashlib.sha256(f"{url}\n{size}\n{config_hash}".encode()).hexdigest()[:16]


class Scanner:
    """Moves batches Pending -> Discovering -> Running (or Failed when nothing can be found)."""

    def __init__(self, store: Store, pod: str, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.lease = Lease(store, "scanner", pod, settings.lock_ttl)

    def tick(self) -> bool:
        """Discover every waiting batch if this pod leads; whether a batch was discovered.

        The lease is taken when a batch waits, and renewed on every tick once held.
        """
        waiting = [
            b
            for b in active_batches(self.store)
            if b.status.record.phase in (BatchPhase.PENDING, BatchPhase.DISCOVERING)
        ]
        # a leader keeps renewing its lease while idle, so leadership is stable (and observable)
        leader = (bool(waiting) or self.lease.held) and self.lease.acquire()
        if not waiting or not leader:
            return False
        for batch in waiting:
            self.discover(batch)
        return True

    def discover(self, batch: Batch) -> None:
        """Create the units of one batch and start it."""
        spec, status = batch.spec, batch.status
        if status.record.phase is BatchPhase.PENDING:
            moved = set_phase(self.store, spec.id, status, phase=BatchPhase.DISCOVERING)
            if moved is None:
                return
            status = moved
        try:
            units = self._units(spec)
        except _Transient as err:
            log.warning("batch %s: discovery will be retried: %s", spec.id, err.__cause__)
            return
        self._create(units)
        RECORDINGS_DISCOVERED.add(len(units))
        set_phase(self.store, spec.id, status, phase=BatchPhase.RUNNING, units_total=len(units))
        dead = sum(u.status is UnitStatus.DEAD for u in units)
        log.info("batch %s: %d units (%d dead at discovery)", spec.id, len(units), dead)

    def _units(self, spec: BatchSpec) -> list[WorkUnit]:
        """One unit per recording found, and a Dead one per source or recording that failed."""
        found: dict[str, int | RoboflowError] = {}
        tasks: dict[str, str] = {}  # a recording's task, from the first source naming one
        for source in spec.sources:
            try:
                recordings = _discovered(functools.partial(resolve_inputs, [source]))
            except RoboflowError as err:
                log.error("batch %s: input %s: %s", spec.id, display_url(source), err)
                found.setdefault(source, err)
                continue
            for url in map(str, recordings):
                if source in spec.tasks:
                    tasks.setdefault(url, spec.tasks[source])
                if url not in found:
                    try:
                        found[url] = _discovered(functools.partial(recording_bytes, url))
                    except RoboflowError as err:
                        found[url] = err
        units = []
        for seq, (url, size) in enumerate(sorted(found.items())):
            unit = WorkUnit(
                id=unit_id(url, size if isinstance(size, int) else 0, spec.config_hash),
                batch=spec.id,
                source=url,
                size=size if isinstance(size, int) else 0,
                config_hash=spec.config_hash,
                seq=seq,
                task=tasks.get(url),
                max_attempts=spec.max_attempts,
            )
            if isinstance(size, RoboflowError):
                reason, kind = failure_reason(size)
                unit = msgspec.structs.replace(unit, status=UnitStatus.DEAD, error=reason, error_kind=kind)
            units.append(unit)
        return units

    def _create(self, units: list[WorkUnit]) -> None:
        size = min(self.settings.scan_batch_size, _TXN_UNITS)
        for start in range(0, len(units), size):
            group = units[start : start + size]
            if not self._put(group):  # some exist already (an earlier, interrupted discovery)
                for unit in group:
                    self._put([unit])
            self.lease.acquire()  # renew: discovery of a huge batch outlives one lease

    def _put(self, units: list[WorkUnit]) -> bool:
        compares = [Compare(keys.unit(u.batch, u.id), ABSENT) for u in units]
        puts: dict[str, bytes] = {}
        for u in units:
            puts[keys.unit(u.batch, u.id)] = encode(u)
            if u.status is UnitStatus.PENDING:
                puts[keys.pending(u.batch, u.id)] = b""
        return self.store.txn(compares, puts)


def _discovered(op: Callable[[], _T]) -> _T:
    """``op`` retried while it fails transiently; still failing so, it raises :class:`_Transient`."""
    try:
        return retry_call(op, _DISCOVERY_RETRY)
    except RoboflowError as err:
        if err.transient:
            raise _Transient(str(err)) from err
        raise
