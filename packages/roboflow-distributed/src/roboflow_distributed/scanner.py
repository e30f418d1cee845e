"""The scanner role (one leader at a time, by lease): expand each new batch's sources into work units.

Discovery is idempotent: a unit's id is a hash of (recording URL, size, config hash) and each unit
is created only if absent, so a scanner that dies mid-discovery leaves nothing for the next leader
to undo, and the same recording named twice in a batch becomes one unit.
"""

from __future__ import annotations

import hashlib
import logging

from roboflow_core import RoboflowError
from roboflow_distributed import keys
from roboflow_distributed.batches import Batch, active_batches, set_phase
from roboflow_distributed.locks import Lease
from roboflow_distributed.records import BatchPhase, WorkUnit, encode
from roboflow_distributed.settings import Settings
from roboflow_distributed.store import ABSENT, Compare, Store
from roboflow_storage import recording_bytes, resolve_inputs

__all__ = ["Scanner", "unit_id"]

log = logging.getLogger("roboflow.scanner")

_TXN_UNITS = 40
"""Units created per transaction (2 puts + 1 compare each; etcd allows 128 operations per txn)."""


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
        """Discover every waiting batch if this pod leads; whether a batch was discovered."""
        waiting = [
            b
            for b in active_batches(self.store)
            if b.status.record.phase in (BatchPhase.PENDING, BatchPhase.DISCOVERING)
        ]
        if not waiting or not self.lease.acquire():
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
            recordings = sorted({str(r) for r in resolve_inputs(spec.sources)})
            units = [
                WorkUnit(
                    id=unit_id(url, size, spec.config_hash),
                    batch=spec.id,
                    source=url,
                    size=size,
                    config_hash=spec.config_hash,
                    seq=seq,
                    max_attempts=spec.max_attempts,
                )
                for seq, (url, size) in enumerate((url, recording_bytes(url)) for url in recordings)
            ]
        except RoboflowError as err:
            log.error("batch %s failed discovery: %s", spec.id, err)
            set_phase(self.store, spec.id, status, phase=BatchPhase.FAILED, error=str(err))
            return
        self._create(units)
        set_phase(self.store, spec.id, status, phase=BatchPhase.RUNNING, units_total=len(units))
        log.info("batch %s: %d units", spec.id, len(units))

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
            puts[keys.pending(u.batch, u.id)] = b""
        return self.store.txn(compares, puts)
