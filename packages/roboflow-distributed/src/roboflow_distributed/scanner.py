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
import os
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from roboflow_core import RoboflowError
from roboflow_distributed import keys, transitions
from roboflow_distributed.batches import Batch, active_batches, failure_reason, unit_puts, write_status
from roboflow_distributed.locks import Lease
from roboflow_distributed.metrics import RECORDINGS_DISCOVERED
from roboflow_distributed.records import BatchPhase, BatchSpec, Sighting, UnitStatus, WorkUnit, encode, read
from roboflow_distributed.settings import Settings
from roboflow_distributed.store import ABSENT, Compare, Store
from roboflow_storage import (
    RetryPolicy,
    display_url,
    has_wildcards,
    is_remote,
    recording_bytes,
    resolve_inputs,
    retry_call,
)

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
        """Discover every waiting batch and list every watched one if this pod leads; whether a
        batch was discovered.

        The lease is taken when a batch waits, and renewed on every tick once held.
        """
        active = active_batches(self.store)
        waiting = [b for b in active if b.status.record.phase in (BatchPhase.PENDING, BatchPhase.DISCOVERING)]
        watched = [
            b for b in active if b.status.record.phase is BatchPhase.RUNNING and b.status.record.watching
        ]
        # a leader keeps renewing its lease while idle, so leadership is stable (and observable)
        leader = (bool(waiting or watched) or self.lease.held) and self.lease.acquire()
        if not leader:
            return False
        for batch in waiting:
            self.discover(batch)
        for batch in watched:  # once per tick: a listing every scan interval
            self.watch(batch)
        return bool(waiting)

    def discover(self, batch: Batch) -> None:
        """Create the units of one batch and start it."""
        spec, status = batch.spec, batch.status
        if status.record.phase is BatchPhase.PENDING:
            discovering = transitions.discover(status.record, batch=spec.id, now=time.time())
            moved = write_status(self.store, spec.id, status, discovering)
            if moved is None:
                return
            status = moved
        try:
            units = [] if spec.watch else self._units(spec)  # a watched batch adds them as they settle
        except _Transient as err:
            log.warning("batch %s: discovery will be retried: %s", spec.id, err.__cause__)
            return
        self._create(units)
        RECORDINGS_DISCOVERED.add(len(units))
        running = transitions.run(status.record, batch=spec.id, units_total=len(units), now=time.time())
        write_status(self.store, spec.id, status, running)
        dead = sum(u.status is UnitStatus.DEAD for u in units)
        log.info("batch %s: %d units (%d dead at discovery)", spec.id, len(units), dead)

    def watch(self, batch: Batch) -> int:
        """List a watched batch's sources and add each recording that is stable: the same size as
        in the previous listing (one still being written changes between listings). A recording
        is added once (its URL is indexed in the same transaction as its unit), and never after
        the batch was closed (the transaction compares the batch's status). How many were added.
        """
        spec, status = batch.spec, batch.status
        try:
            found = self._listing(spec)
        except _Transient as err:
            log.warning("batch %s: listing will be retried: %s", spec.id, err.__cause__)
            return 0
        added = 0
        seq = len(self.store.scan(keys.watched_of(spec.id)))
        for url, (size, task) in sorted(found.items()):
            digest = _url_hash(url)
            if self.store.get(keys.watched(spec.id, digest)) is not None:
                continue
            seen = read(self.store, keys.sighted(spec.id, digest), Sighting)
            if seen is None or seen.record.size != size or size == 0:
                self.store.txn(puts={keys.sighted(spec.id, digest): encode(Sighting(url=url, size=size))})
                continue
            unit = WorkUnit(
                id=unit_id(url, size, spec.config_hash),
                batch=spec.id,
                source=url,
                size=size,
                config_hash=spec.config_hash,
                seq=seq + added,
                task=task,
                max_attempts=spec.max_attempts,
            )
            ukey = keys.unit(spec.id, unit.id)
            if not self.store.txn(
                [
                    Compare(keys.watched(spec.id, digest), ABSENT),
                    Compare(ukey, ABSENT),
                    Compare(keys.batch_status(spec.id), status.version),  # not closed meanwhile
                ],
                {**unit_puts(unit), keys.watched(spec.id, digest): b""},
                [keys.sighted(spec.id, digest)],
            ):
                break  # the batch changed (closed, suspended): the next tick reads it again
            added += 1
            log.info("batch %s: added %s", spec.id, display_url(url))
        RECORDINGS_DISCOVERED.add(added)
        return added

    def _listing(self, spec: BatchSpec) -> dict[str, tuple[int, str | None]]:
        """Every recording under a watched batch's sources: its size and task."""
        found: dict[str, tuple[int, str | None]] = {}
        for source in spec.sources:
            try:
                recordings = _discovered(functools.partial(resolve_inputs, [watch_pattern(source)]))
            except RoboflowError as err:
                log.info("batch %s: nothing under %s yet: %s", spec.id, display_url(source), err)
                continue
            for url in map(str, recordings):
                if url not in found:
                    try:
                        size = _discovered(functools.partial(recording_bytes, url))
                    except RoboflowError as err:  # gone meanwhile: the next listing tells
                        log.info("batch %s: %s: %s", spec.id, display_url(url), err)
                        continue
                    found[url] = (size, spec.tasks.get(source))
        return found

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
            reason, kind = failure_reason(size) if isinstance(size, RoboflowError) else (None, None)
            units.append(
                WorkUnit(
                    id=unit_id(url, size if isinstance(size, int) else 0, spec.config_hash),
                    batch=spec.id,
                    source=url,
                    size=size if isinstance(size, int) else 0,
                    config_hash=spec.config_hash,
                    seq=seq,
                    task=tasks.get(url),
                    max_attempts=spec.max_attempts,
                    status=UnitStatus.PENDING if reason is None else UnitStatus.DEAD,  # failed at discovery
                    error=reason,
                    error_kind=kind,
                )
            )
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
        puts = {key: value for u in units for key, value in unit_puts(u).items()}
        return self.store.txn(compares, puts)


def watch_pattern(source: str) -> str:
    """What a watched source lists: a glob as given, else the recordings in the directory or prefix."""
    if not is_remote(source):
        return source if has_wildcards(source) else os.path.join(source, "*")
    parts = urlsplit(source)  # the glob is in the path, before any query (endpoint=...)
    if has_wildcards(parts.path):
        return source
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/*"))


def _url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:24]


def _discovered(op: Callable[[], _T]) -> _T:
    """``op`` retried while it fails transiently; still failing so, it raises :class:`_Transient`."""
    try:
        return retry_call(op, _DISCOVERY_RETRY)
    except RoboflowError as err:
        if err.transient:
            raise _Transient(str(err)) from err
        raise
