"""A batch's life after submit: suspend and resume, delete, and the TTL collection of finished ones.

Suspending a Running batch flips its phase and its active marker (what workers read to order their
claims) in one transaction, so no worker claims its jobs afterwards; its running jobs finish, or
are given back to the queue with ``release``. A finished batch is deleted with its jobs,
checkpoints, merge record, staging and index entries (its dataset only when asked), spec and status
last, so an interrupted delete can be run again. The control roles delete each finished batch
``ttl_seconds`` after it finished: the expiry index is sorted by that time, so each sweep reads
only the batches due.
"""

from __future__ import annotations

import logging
import shutil
import time

from roboflow_core import ConflictError, RoboflowError
from roboflow_distributed import keys, transitions
from roboflow_distributed.batches import (
    Batch,
    active_batches,
    active_marker,
    expiry_key,
    find_unit,
    get_batch,
    list_units,
)
from roboflow_distributed.reaper import release_unit
from roboflow_distributed.records import BatchStatus, UnitStatus, WorkUnit, encode
from roboflow_distributed.staging import remove_batch
from roboflow_distributed.store import Compare, Store
from roboflow_storage import Storage, display_url

__all__ = ["close_batch", "collect_expired", "delete_batch", "delete_unit", "resume_batch", "suspend_batch"]

log = logging.getLogger("roboflow.lifecycle")

_SCAN = 100


def suspend_batch(store: Store, batch_id: str, *, release: bool = False) -> tuple[BatchStatus, int]:
    """Stop workers claiming a Running batch's jobs; with ``release``, also give its running jobs
    back to the queue (they resume after their uploaded segments once it is resumed).

    Returns:
        The new status and how many running jobs were released.

    Raises:
        NotFoundError: No such batch.
        ConflictError: It is not Running.
    """
    status = _switch(store, batch_id, suspended=True)
    released = 0
    if release:
        for unit in list_units(store, batch_id, UnitStatus.PROCESSING):
            released += release_unit(store, unit, "released: its batch was suspended")
    return status, released


def resume_batch(store: Store, batch_id: str) -> BatchStatus:
    """Let workers claim a Suspended batch's jobs again.

    Raises:
        NotFoundError: No such batch.
        ConflictError: It is not Suspended.
    """
    return _switch(store, batch_id, suspended=False)


def _switch(store: Store, batch_id: str, suspended: bool) -> BatchStatus:
    batch = get_batch(store, batch_id)
    change = transitions.suspend if suspended else transitions.resume
    new = change(batch.status.record, batch=batch_id, now=time.time())
    skey = keys.batch_status(batch_id)
    marker = active_marker(batch.spec, suspended=suspended)
    if not store.txn(
        [Compare(skey, batch.status.version)], {skey: encode(new), keys.active(batch_id): marker}
    ):
        raise ConflictError("batch changed meanwhile; try again", batch=batch_id)
    return new


def close_batch(store: Store, batch_id: str) -> BatchStatus:
    """Stop watching a batch's sources: what was added is converted and published, then it
    completes (the finalizer merges the rest like any batch's).

    Raises:
        NotFoundError: No such batch.
        ConflictError: It is not a watched batch still open.
    """
    batch = get_batch(store, batch_id)
    new = transitions.close_watch(batch.status.record, batch=batch_id, now=time.time())
    skey = keys.batch_status(batch_id)
    if not store.txn([Compare(skey, batch.status.version)], {skey: encode(new)}):
        raise ConflictError("batch changed meanwhile; try again", batch=batch_id)
    return new


def delete_batch(store: Store, batch_id: str, *, with_dataset: bool = False) -> None:
    """Delete a finished batch: its jobs, checkpoints, job logs, merge record, staged episodes and
    index entries, then its spec and status; with ``with_dataset`` also the dataset at its output.

    Raises:
        NotFoundError: No such batch.
        ConflictError: It has not finished (cancel it first), or (with ``with_dataset``) an
            unfinished batch writes into the same dataset.
        StorageError: The staging area or the dataset could not be deleted (the records are
            kept, so the delete can be run again).
    """
    batch = get_batch(store, batch_id)
    status = batch.status.record
    if not status.phase.terminal:
        raise ConflictError(f"batch is {status.phase}; cancel it first", batch=batch_id)
    remove_batch(Storage.from_url(batch.spec.staging), batch_id)
    if with_dataset:
        _delete_dataset(store, batch)
    for prefix in (
        keys.watched_of(batch_id),
        keys.sighted_of(batch_id),
        keys.units_of(batch_id),
        keys.pending_of(batch_id),
        keys.checkpoints_of(batch_id),
        keys.job_logs_of(batch_id),
    ):
        _delete_prefix(store, prefix)
    store.txn(deletes=[keys.merge(batch_id), keys.active(batch_id), expiry_key(store, batch_id, status)])
    spec_key, status_key = keys.batch_spec(batch_id), keys.batch_status(batch_id)
    if not store.txn([Compare(status_key, batch.status.version)], deletes=[spec_key, status_key]):
        raise ConflictError("batch changed meanwhile; try again", batch=batch_id)


def _delete_dataset(store: Store, batch: Batch) -> None:
    output = Storage.from_url(batch.spec.output)
    where = output.location.identity()
    for other in active_batches(store):
        if Storage.from_url(other.spec.output).location.identity() == where:
            raise ConflictError(
                f"batch {other.spec.id} ({other.status.record.phase}) writes into this dataset; "
                "its dataset is not deleted",
                batch=batch.spec.id,
                output=display_url(batch.spec.output),
            )
    if output.is_local:
        shutil.rmtree(output.location.prefix, ignore_errors=True)
    else:
        for info in list(output.list()):
            output.delete(info.key)
    log.info("deleted the dataset %s of batch %s", display_url(batch.spec.output), batch.spec.id)


def delete_unit(store: Store, ref: str) -> WorkUnit:
    """Delete a dead or cancelled job (or any job of a finished batch) with its checkpoint and logs.

    Raises:
        NotFoundError: No such job.
        ConflictError: It may still be converted or merged.
    """
    unit = find_unit(store, ref)
    record = unit.record
    phase = get_batch(store, record.batch).status.record.phase
    if not phase.terminal and record.status not in (UnitStatus.DEAD, UnitStatus.CANCELLED):
        raise ConflictError(
            f"job is {record.status} in a {phase} batch; only dead or cancelled jobs are deleted "
            "before their batch finishes",
            job=ref,
        )
    ukey = keys.unit(record.batch, record.id)
    extra = [keys.pending(record.batch, record.id), keys.checkpoint(record.batch, record.id)]
    if not store.txn([Compare(ukey, unit.version)], deletes=[ukey, *extra]):
        raise ConflictError("job changed meanwhile; try again", job=ref)
    _delete_prefix(store, keys.job_logs_of(record.batch, record.id))
    return record


def collect_expired(store: Store, now: float | None = None, *, limit: int = _SCAN) -> int:
    """Delete the finished batches whose ``ttl_seconds`` ran out by ``now`` (at most ``limit``);
    how many were deleted. Reads the expiry index one entry at a time, from the earliest, and stops
    at the first that is not due: a sweep with nothing due reads one key."""
    now = time.time() if now is None else now
    deleted = 0
    while deleted < limit and (found := store.scan(keys.EXPIRY, limit=1)):
        entry = found[0]
        due, batch_id = keys.parse_expiry(entry.key)
        if due > now:
            break
        if store.get(keys.batch_status(batch_id)) is not None:
            try:
                delete_batch(store, batch_id)
            except RoboflowError as err:
                if err.transient:
                    log.warning("batch %s is due for deletion, will retry: %s", batch_id, err)
                    break
                log.error(
                    "batch %s is due for deletion but cannot be deleted; delete it by hand: %s", batch_id, err
                )
                store.txn([Compare(entry.key, entry.version)], deletes=[entry.key])
                continue
        store.txn([Compare(entry.key, entry.version)], deletes=[entry.key])
        deleted += 1
        log.info("deleted batch %s: its ttl ran out", batch_id)
    return deleted


def _delete_prefix(store: Store, prefix: str) -> None:
    while found := [e.key for e in store.scan(prefix, limit=_SCAN)]:
        store.txn(deletes=found)
