"""Submitting batches and looking after them: the API behind ``roboflow submit``, ``batch`` and ``jobs``."""

from __future__ import annotations

import getpass
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import msgspec

from roboflow_core import ConfigError, ConflictError, CoordinationError, NotFoundError, RoboflowError
from roboflow_core.annotation import parse_annotation
from roboflow_distributed import keys
from roboflow_distributed.configs import store_config
from roboflow_distributed.records import (
    BatchPhase,
    BatchSpec,
    BatchStatus,
    MergeState,
    UnitStatus,
    Versioned,
    WorkUnit,
    decode,
    encode,
    read,
    scan,
)
from roboflow_distributed.store import ABSENT, Compare, Store
from roboflow_storage import Storage, check_inputs, is_remote

__all__ = [
    "Batch",
    "active_batches",
    "cancel_batch",
    "cancel_unit",
    "default_staging",
    "delete_batch",
    "delete_unit",
    "failure_reason",
    "find_unit",
    "get_batch",
    "list_batches",
    "list_units",
    "retry_merge",
    "retry_unit",
    "set_phase",
    "submit_batch",
]


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch's spec with its current status."""

    spec: BatchSpec
    status: Versioned[BatchStatus]


def _new_batch_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def default_staging(output: str) -> str:
    """Where workers stage episodes for ``output``: beside it, as ``<output>.roboflow-staging``."""
    if not is_remote(output):
        path = os.path.abspath(output).rstrip("/")
        return f"{path}.roboflow-staging"
    parts = urlsplit(output)
    path = parts.path.rstrip("/")
    path = f"{path}.roboflow-staging" if path else "/.roboflow-staging"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def submit_batch(
    store: Store,
    sources: Sequence[str],
    config_text: str,
    output: str,
    *,
    config_source: str = "<config>",
    fmt: str = "lerobot-v3",
    task: str | None = None,
    annotation: str | None = None,
    max_attempts: int = 3,
    name: str | None = None,
    staging: str | None = None,
    tasks: Mapping[str, str] | None = None,
    episodes_per_chunk: int | None = None,
) -> BatchSpec:
    """Validate and store a batch; the scanner expands its sources into work units.

    Args:
        store: The coordination store.
        sources: Recordings, directories, prefixes or globs (local or store URLs).
        config_text: The TOML config (validated, stored by its content hash).
        output: The dataset's URL or path (appended to when it exists).
        config_source: Where the config came from, for error messages.
        fmt: ``lerobot-v3`` or ``lerobot-v2.1``.
        task: The episodes' task (defaults to the config's).
        annotation: The skill marks of the config's ``annotation_file`` (its JSON text): stored
            with the batch, so workers split each recording into one episode per mark.
        max_attempts: Failed conversions of a unit before it is Dead.
        name: A human name (defaults to the id).
        staging: Where staged episodes go (defaults to :func:`default_staging`).
        tasks: A task per source (as given in ``sources``), over ``task``: every recording found
            under that source gets it (a manifest's per-input task).
        episodes_per_chunk: ``chunks_size`` of the dataset when the batch creates it.

    Raises:
        ConfigError: The config or the annotation is invalid, a task is given with an annotation,
            there are no sources, or ``max_attempts`` < 1.
        StorageError: ``output`` or ``staging`` is not a valid storage URL, a source URL is
            refused (credentials in it, an endpoint not allowed), or an input named explicitly
            (not a glob) does not exist.
        CoordinationError: The store is unreachable.
    """
    if not sources:
        raise ConfigError("a batch needs at least one input", key="sources")
    if max_attempts < 1:
        raise ConfigError(f"must be >= 1, got {max_attempts}", key="max_attempts")
    if episodes_per_chunk is not None and episodes_per_chunk < 1:
        raise ConfigError(f"must be >= 1, got {episodes_per_chunk}", key="episodes_per_chunk")
    tasks = {_source(s): t for s, t in (tasks or {}).items()}
    if unknown := set(tasks) - {_source(s) for s in sources}:
        raise ConfigError(f"a task names a source that is not submitted: {min(unknown)}", key="tasks")
    digest, _ = store_config(store, config_text, source=config_source)
    if annotation is not None:
        parse_annotation(annotation, source=f"annotation of {config_source}")
        if task is not None or tasks:
            raise ConfigError(
                "the annotation's marks give every episode its task; drop the batch task",
                key="annotation_file",
            )
    output = output if is_remote(output) else os.path.abspath(output)
    staging = staging or default_staging(output)
    for url in (output, staging):
        Storage.from_url(url)  # validates the URL and endpoint now, not in a worker
    check_inputs(sources)
    batch_id = _new_batch_id()
    spec = BatchSpec(
        id=batch_id,
        name=name or batch_id,
        sources=list(dict.fromkeys(_source(s) for s in sources)),
        output=output,
        staging=staging,
        config_hash=digest,
        format=fmt,
        task=task,
        tasks=tasks,
        annotation=annotation,
        max_attempts=max_attempts,
        episodes_per_chunk=episodes_per_chunk,
        submitted_at=time.time(),
        submitted_by=_user(),
    )
    status = BatchStatus(phase=BatchPhase.PENDING, updated_at=time.time())
    spec_key, status_key = keys.batch_spec(batch_id), keys.batch_status(batch_id)
    if not store.txn(
        [Compare(spec_key, ABSENT), Compare(status_key, ABSENT)],
        {spec_key: encode(spec), status_key: encode(status), keys.active(batch_id): b""},
    ):
        raise CoordinationError("batch id already taken; submit again", batch=batch_id)
    return spec


def _source(source: str) -> str:
    """A source as stored: a URL as given, a local path made absolute."""
    return source if is_remote(source) else os.path.abspath(source)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def list_batches(store: Store) -> list[Batch]:
    """Every batch, oldest first."""
    specs = {v.record.id: v.record for v in scan(store, keys.BATCH_SPECS, BatchSpec)}
    statuses = {keys.batch_of_status(e.key): decode(e, BatchStatus) for e in store.scan(keys.BATCH_STATUSES)}
    return [Batch(spec, statuses[bid]) for bid, spec in sorted(specs.items()) if bid in statuses]


def active_batches(store: Store) -> list[Batch]:
    """The batches that have not finished, oldest first: what the roles look at every tick.

    Reads the small active index and then only those batches, so the cost does not grow with
    the batches finished before.
    """
    batches = []
    for entry in store.scan(keys.ACTIVE):
        try:
            batches.append(get_batch(store, keys.batch_of_active(entry.key)))
        except CoordinationError:
            continue  # finished (and its marker deleted) between the scan and the read
    return batches


def get_batch(store: Store, batch_id: str) -> Batch:
    """One batch.

    Raises:
        NotFoundError: No such batch.
    """
    spec = read(store, keys.batch_spec(batch_id), BatchSpec)
    status = read(store, keys.batch_status(batch_id), BatchStatus)
    if spec is None or status is None:
        raise NotFoundError("no such batch", batch=batch_id)
    return Batch(spec.record, status)


def set_phase(
    store: Store, batch_id: str, current: Versioned[BatchStatus], **changes: object
) -> Versioned[BatchStatus] | None:
    """Compare-and-swap the batch status; the new status, or ``None`` when someone else changed it.

    A terminal phase also removes the batch from the active index, in the same transaction.
    """
    new = msgspec.structs.replace(current.record, updated_at=time.time(), **changes)
    key = keys.batch_status(batch_id)
    finished = [keys.active(batch_id)] if new.phase.terminal else []
    if not store.txn([Compare(key, current.version)], {key: encode(new)}, finished):
        return None
    return read(store, key, BatchStatus)


def cancel_batch(store: Store, batch_id: str) -> BatchStatus:
    """Cancel a batch: it stops (its pending units are cancelled) and nothing is merged.

    Raises:
        NotFoundError: No such batch.
        ConflictError: It is already merging or finished.
    """
    while True:
        batch = get_batch(store, batch_id)
        phase = batch.status.record.phase
        if phase.terminal:
            raise ConflictError(f"batch is already {phase}", batch=batch_id)
        if phase is BatchPhase.MERGING:
            raise ConflictError(
                "batch is merging its episodes into the dataset; too late to cancel", batch=batch_id
            )
        done = set_phase(store, batch_id, batch.status, phase=BatchPhase.CANCELLED, finished_at=time.time())
        if done is not None:
            break
    for unit in list_units(store, batch_id):
        if unit.record.status in (UnitStatus.PENDING, UnitStatus.FAILED):
            _cancel(store, unit)
    return done.record


def list_units(
    store: Store, batch_id: str | None = None, status: UnitStatus | None = None
) -> list[Versioned[WorkUnit]]:
    """Work units of one batch (or all), optionally only those with ``status``; in batch, seq order."""
    batches = [batch_id] if batch_id else [b.spec.id for b in list_batches(store)]
    units: list[Versioned[WorkUnit]] = []
    for bid in batches:
        found = scan(store, keys.units_of(bid), WorkUnit)
        units.extend(sorted(found, key=lambda u: (u.record.seq, u.record.id)))
    return [u for u in units if status is None or u.record.status == status]


def find_unit(store: Store, ref: str) -> Versioned[WorkUnit]:
    """A unit by ``BATCH/UNIT`` or by a unit id (prefix) that is unique across batches.

    Raises:
        NotFoundError: None matches.
        ConflictError: Several match.
    """
    if "/" in ref:
        batch_id, unit_id = ref.split("/", 1)
        found = read(store, keys.unit(batch_id, unit_id), WorkUnit)
        matches = [found] if found is not None else []
    else:
        matches = [u for u in list_units(store) if u.record.id.startswith(ref)]
    if not matches:
        raise NotFoundError("no such job", job=ref)
    if len(matches) > 1:
        raise ConflictError(f"{len(matches)} jobs match; name it as BATCH/UNIT", job=ref)
    return matches[0]


def retry_unit(store: Store, ref: str) -> WorkUnit:
    """Queue a Dead, Failed or Cancelled unit again with its attempts reset.

    Raises:
        NotFoundError: No such unit.
        ConflictError: It is not finished, or its batch no longer runs.
    """
    unit = find_unit(store, ref)
    record = unit.record
    if record.status not in (UnitStatus.DEAD, UnitStatus.FAILED, UnitStatus.CANCELLED):
        raise ConflictError(
            f"job is {record.status}; only dead, failed or cancelled jobs are retried", job=ref
        )
    batch = get_batch(store, record.batch)
    if batch.status.record.phase not in (BatchPhase.RUNNING, BatchPhase.DISCOVERING):
        raise ConflictError(
            f"its batch is {batch.status.record.phase}; submit the recording in a new batch", job=ref
        )
    new = msgspec.structs.replace(
        record,
        status=UnitStatus.PENDING,
        attempts=0,
        lost=0,
        owner=None,
        error=None,
        error_kind=None,
        updated_at=time.time(),
        retry_after=0.0,
    )
    ukey, pkey = keys.unit(record.batch, record.id), keys.pending(record.batch, record.id)
    # the batch must still be the one read: a finalizer that moved it to Merging meanwhile would
    # never merge a unit queued now
    skey = keys.batch_status(record.batch)
    if not store.txn(
        [Compare(ukey, unit.version), Compare(skey, batch.status.version)], {ukey: encode(new), pkey: b""}
    ):
        raise ConflictError("job or its batch changed meanwhile; try again", job=ref)
    return new


def retry_merge(store: Store, batch_id: str) -> BatchStatus:
    """Merge a batch again whose merge failed (its staged episodes were kept).

    The merge resumes after the groups it had published; when it had published none, it starts
    afresh from the dataset as it is now (e.g. after the cause was removed).

    Raises:
        NotFoundError: No such batch.
        ConflictError: Its merge did not fail.
    """
    batch = get_batch(store, batch_id)
    status = batch.status.record
    if not status.merge_failed:
        raise ConflictError(
            f"batch is {status.phase}; only a batch whose merge failed can merge again", batch=batch_id
        )
    new = msgspec.structs.replace(
        status,
        phase=BatchPhase.MERGING,
        merge_failed=False,
        error=None,
        finished_at=None,
        updated_at=time.time(),
    )
    skey, mkey = keys.batch_status(batch_id), keys.merge(batch_id)
    merge = read(store, mkey, MergeState)
    restart = [mkey] if merge is not None and merge.record.published == 0 else []
    if not store.txn(
        [Compare(skey, batch.status.version)], {skey: encode(new), keys.active(batch_id): b""}, restart
    ):
        raise ConflictError("batch changed meanwhile; try again", batch=batch_id)
    return new


def cancel_unit(store: Store, ref: str) -> WorkUnit:
    """Cancel a unit that has not finished (a running one's result is then discarded).

    Raises:
        NotFoundError: No such unit.
        ConflictError: It already finished.
    """
    unit = find_unit(store, ref)
    if unit.record.status.terminal:
        raise ConflictError(f"job is already {unit.record.status}", job=ref)
    if not _cancel(store, unit):
        raise ConflictError("job changed meanwhile; try again", job=ref)
    return msgspec.structs.replace(unit.record, status=UnitStatus.CANCELLED)


def _cancel(store: Store, unit: Versioned[WorkUnit]) -> bool:
    record = unit.record
    new = msgspec.structs.replace(record, status=UnitStatus.CANCELLED, updated_at=time.time())
    ukey, pkey = keys.unit(record.batch, record.id), keys.pending(record.batch, record.id)
    return store.txn([Compare(ukey, unit.version)], {ukey: encode(new)}, [pkey])


def delete_batch(store: Store, batch_id: str) -> None:
    """Forget a finished batch: its spec, status, jobs, checkpoints, logs and merge record.

    The dataset it produced is not touched. Spec and status go last, so an interrupted delete
    leaves a batch that can be deleted again.

    Raises:
        NotFoundError: No such batch.
        ConflictError: The batch has not finished (cancel it first).
    """
    batch = get_batch(store, batch_id)
    if not batch.status.record.phase.terminal:
        raise ConflictError(f"batch is {batch.status.record.phase}; cancel it first", batch=batch_id)
    for prefix in (
        keys.units_of(batch_id),
        keys.pending_of(batch_id),
        keys.checkpoints_of(batch_id),
        keys.job_logs_of(batch_id),
    ):
        _delete_prefix(store, prefix)
    store.txn(deletes=[keys.merge(batch_id), keys.active(batch_id)])
    spec_key, status_key = keys.batch_spec(batch_id), keys.batch_status(batch_id)
    if not store.txn([Compare(status_key, batch.status.version)], deletes=[spec_key, status_key]):
        raise ConflictError("batch changed meanwhile; try again", batch=batch_id)


def delete_unit(store: Store, ref: str) -> WorkUnit:
    """Forget a dead or cancelled job (or any job of a finished batch), with its checkpoint and logs.

    Raises:
        NotFoundError: No such job.
        ConflictError: The job may still be converted or merged.
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


def _delete_prefix(store: Store, prefix: str) -> None:
    while found := [e.key for e in store.scan(prefix, limit=100)]:
        store.txn(deletes=found)


def failure_reason(err: BaseException) -> tuple[str, str]:
    """``(reason, kind)`` of an error, for a unit's record."""
    if isinstance(err, RoboflowError):
        return str(err), type(err).__name__
    return f"{type(err).__name__}: {err}", "InternalError"
