"""Submitting batches and looking after them: the API behind ``roboflow submit``, ``batch`` and ``jobs``."""

from __future__ import annotations

import getpass
import os
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from roboflow_core import ConfigError, ConflictError, CoordinationError, NotFoundError, RoboflowError
from roboflow_core.annotation import parse_annotation
from roboflow_distributed import keys, transitions
from roboflow_distributed.configs import store_config
from roboflow_distributed.records import (
    DEFAULT_TTL_SECONDS,
    ActiveBatch,
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
from roboflow_storage import Storage, check_inputs, has_wildcards, is_remote

__all__ = [
    "Batch",
    "active_batches",
    "active_marker",
    "cancel_batch",
    "cancel_unit",
    "check_labels",
    "default_staging",
    "expiry_key",
    "failure_reason",
    "find_unit",
    "finished_index",
    "get_batch",
    "has_labels",
    "list_batches",
    "list_units",
    "retry_merge",
    "retry_unit",
    "submit_batch",
    "unit_puts",
    "write_status",
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
    priority: int = 0,
    labels: Mapping[str, str] | None = None,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    watch: bool = False,
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
        priority: Jobs of batches with a higher priority are claimed first (see
            :mod:`~roboflow_distributed.queue`).
        labels: ``key=value`` labels to find the batch by.
        ttl_seconds: How long after it finished the batch's records are kept.
        watch: Keep the batch open: the scanner adds each new recording under its sources once
            it is stable, the finalizer publishes as they convert, until :func:`close_batch`.

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
    for what, value in (("episodes_per_chunk", episodes_per_chunk or 1), ("ttl_seconds", ttl_seconds)):
        if value < 1:
            raise ConfigError(f"must be >= 1, got {value}", key=what)
    labels = dict(labels or {})
    check_labels(labels)
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
    if watch:
        _check_watched(sources)
    else:
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
        priority=priority,
        labels=labels,
        ttl_seconds=ttl_seconds,
        watch=watch,
        submitted_at=time.time(),
        submitted_by=_user(),
    )
    status = BatchStatus(phase=BatchPhase.PENDING, updated_at=time.time(), watching=watch)
    spec_key, status_key = keys.batch_spec(batch_id), keys.batch_status(batch_id)
    if not store.txn(
        [Compare(spec_key, ABSENT), Compare(status_key, ABSENT)],
        {spec_key: encode(spec), status_key: encode(status), keys.active(batch_id): active_marker(spec)},
    ):
        raise CoordinationError("batch id already taken; submit again", batch=batch_id)
    return spec


def _check_watched(sources: Sequence[str]) -> None:
    """A watched source is a directory or prefix (which may be empty yet) or a glob."""
    for source in sources:
        if is_remote(source):
            Storage.from_url(source)  # the URL and its endpoint are valid
        elif not (os.path.isdir(source) or has_wildcards(source)):
            raise ConfigError(f"a watched source is a directory, a prefix or a glob: {source}", key="sources")


def _source(source: str) -> str:
    """A source as stored: a URL as given, a local path made absolute."""
    return source if is_remote(source) else os.path.abspath(source)


_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._/-]{0,62}[A-Za-z0-9])?")


def check_labels(labels: Mapping[str, str]) -> None:
    """Refuse a label whose key is not a name (letters, digits, ``._/-``, up to 64) or whose value
    is not one line of at most 256 characters.

    Raises:
        ConfigError: Naming the label.
    """
    for key, value in labels.items():
        if not _LABEL.fullmatch(key):
            raise ConfigError(f"bad label key {key!r}: letters, digits and ._/- (up to 64)", key="labels")
        if len(value) > 256 or "\n" in value:
            raise ConfigError("the value must be one line of at most 256 characters", key=f"labels.{key}")


def has_labels(spec: BatchSpec, wanted: Mapping[str, str]) -> bool:
    """Whether the batch carries every ``key=value`` of ``wanted``."""
    return all(spec.labels.get(k) == v for k, v in wanted.items())


def active_marker(spec: BatchSpec, *, suspended: bool = False) -> bytes:
    """The value of the batch's active marker (what workers order their claims by)."""
    return encode(ActiveBatch(priority=spec.priority, suspended=suspended))


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


def write_status(
    store: Store, batch_id: str, current: Versioned[BatchStatus], new: BatchStatus
) -> Versioned[BatchStatus] | None:
    """Compare-and-swap the batch status from ``current`` to ``new`` (from
    :mod:`~roboflow_distributed.transitions`); the new status, or ``None`` when someone else
    changed it.

    A terminal phase also moves the batch from the active index to the expiry index, in the same
    transaction (see :func:`finished_index`).
    """
    key = keys.batch_status(batch_id)
    puts, deletes = finished_index(store, batch_id, new) if new.phase.terminal else ({}, [])
    if not store.txn([Compare(key, current.version)], {key: encode(new), **puts}, deletes):
        return None
    return read(store, key, BatchStatus)


def unit_puts(new: WorkUnit) -> dict[str, bytes]:
    """The puts that write a unit's record: the record, and its queue entry when it is Pending."""
    ukey = keys.unit(new.batch, new.id)
    if new.status is UnitStatus.PENDING:
        return {ukey: encode(new), keys.pending(new.batch, new.id): b""}
    return {ukey: encode(new)}


def finished_index(store: Store, batch_id: str, status: BatchStatus) -> tuple[dict[str, bytes], list[str]]:
    """The index changes that go with a batch's terminal ``status``, in its transaction: its active
    marker goes, and its expiry marker (when its records are to be deleted) comes."""
    return {expiry_key(store, batch_id, status): b""}, [keys.active(batch_id)]


def expiry_key(store: Store, batch_id: str, status: BatchStatus) -> str:
    """The expiry marker of a batch finished with ``status``: ``ttl_seconds`` after it finished."""
    spec = read(store, keys.batch_spec(batch_id), BatchSpec)
    ttl = spec.record.ttl_seconds if spec is not None else DEFAULT_TTL_SECONDS
    finished = status.finished_at if status.finished_at is not None else status.updated_at
    return keys.expiry(batch_id, finished + ttl)


def cancel_batch(store: Store, batch_id: str) -> BatchStatus:
    """Cancel a batch: it stops (its pending units are cancelled) and nothing is merged.

    Raises:
        NotFoundError: No such batch.
        ConflictError: It is already merging or finished.
    """
    while True:
        batch = get_batch(store, batch_id)
        new = transitions.cancel_batch(batch.status.record, batch=batch_id, now=time.time())
        done = write_status(store, batch_id, batch.status, new)
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
    new = transitions.retry(record, now=time.time())
    batch = get_batch(store, record.batch)
    if batch.status.record.phase not in (BatchPhase.RUNNING, BatchPhase.DISCOVERING, BatchPhase.SUSPENDED):
        raise ConflictError(
            f"its batch is {batch.status.record.phase}; submit the recording in a new batch", job=ref
        )
    ukey = keys.unit(record.batch, record.id)
    # the batch must still be the one read: a finalizer that moved it to Merging meanwhile would
    # never merge a unit queued now
    skey = keys.batch_status(record.batch)
    if not store.txn([Compare(ukey, unit.version), Compare(skey, batch.status.version)], unit_puts(new)):
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
    new = transitions.retry_merge(status, batch=batch_id, now=time.time())
    skey, mkey = keys.batch_status(batch_id), keys.merge(batch_id)
    merge = read(store, mkey, MergeState)
    restart = [mkey] if merge is not None and merge.record.published == 0 else []
    expiry = expiry_key(store, batch_id, status)
    if not store.txn(
        [Compare(skey, batch.status.version)],
        {skey: encode(new), keys.active(batch_id): active_marker(batch.spec)},
        [*restart, expiry],
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
    cancelled = _cancel(store, unit)
    if cancelled is None:
        raise ConflictError("job changed meanwhile; try again", job=ref)
    return cancelled


def _cancel(store: Store, unit: Versioned[WorkUnit]) -> WorkUnit | None:
    """Cancel the unit read at ``unit`` and drop its queue entry; its new record, or ``None`` when
    it changed meanwhile.

    Raises:
        ConflictError: It already finished.
    """
    new = transitions.cancel(unit.record, now=time.time())
    ukey, pkey = keys.unit(new.batch, new.id), keys.pending(new.batch, new.id)
    return new if store.txn([Compare(ukey, unit.version)], {ukey: encode(new)}, [pkey]) else None


def failure_reason(err: BaseException) -> tuple[str, str]:
    """``(reason, kind)`` of an error, for a unit's record."""
    if isinstance(err, RoboflowError):
        return str(err), type(err).__name__
    return f"{type(err).__name__}: {err}", "InternalError"
