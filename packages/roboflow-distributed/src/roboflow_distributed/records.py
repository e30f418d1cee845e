"""The records kept in the coordination store (msgspec Structs, JSON on the wire).

Every record is read together with its store version (:class:`Versioned`), and every change is
a compare-and-swap on that version, so two pods never both win a transition.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

import msgspec

from roboflow_core import CoordinationError
from roboflow_distributed.store import Entry, Store

__all__ = [
    "API_VERSION",
    "DEFAULT_TTL_SECONDS",
    "ActiveBatch",
    "BatchPhase",
    "BatchSpec",
    "BatchStatus",
    "Checkpoint",
    "Heartbeat",
    "Lock",
    "MergeState",
    "Sighting",
    "UnitStatus",
    "Versioned",
    "WorkUnit",
    "decode",
    "encode",
    "read",
    "scan",
]

API_VERSION = "roboflow/v1"
DEFAULT_TTL_SECONDS = 86400
"""How long a finished batch's records are kept (the original's ``ttl_seconds``)."""


class BatchPhase(StrEnum):
    """Where a batch is: Pending -> Discovering -> Running -> Merging -> Complete | Failed | Cancelled;
    Running <-> Suspended (no job of it is claimed)."""

    PENDING = "pending"
    DISCOVERING = "discovering"
    RUNNING = "running"
    SUSPENDED = "suspended"
    MERGING = "merging"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """No more work will happen on the batch."""
        return self in (BatchPhase.COMPLETE, BatchPhase.FAILED, BatchPhase.CANCELLED)


class UnitStatus(StrEnum):
    """Where a work unit is: Pending -> Processing -> Complete | Failed (retried) | Dead | Cancelled."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETE = "complete"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """The unit will not run again (unless retried by hand)."""
        return self in (UnitStatus.COMPLETE, UnitStatus.DEAD, UnitStatus.CANCELLED)


class BatchSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a user submitted: immutable after submit."""

    id: str
    name: str
    sources: list[str]
    output: str
    staging: str
    config_hash: str
    format: str = "lerobot-v3"
    task: str | None = None
    tasks: dict[str, str] = {}  # a task per source (a manifest's), over ``task``
    annotation: str | None = None  # the config's annotation_file (skill marks, JSON), read at submit
    max_attempts: int = 3
    episodes_per_chunk: int | None = None  # chunks_size of a new dataset (None: 1000)
    priority: int = 0  # higher: its jobs are claimed first (see roboflow_distributed.queue)
    labels: dict[str, str] = {}
    ttl_seconds: int = DEFAULT_TTL_SECONDS  # its records are collected this long after it finished
    watch: bool = False  # the scanner adds new recordings under its sources until it is closed
    submitted_at: float
    submitted_by: str = ""
    api_version: str = API_VERSION
    kind: str = "BatchJob"


class ActiveBatch(msgspec.Struct, frozen=True, kw_only=True):
    """The value of a batch's ``batch/active/{batch}`` marker: what a worker needs to order its
    claims (an empty value, as older versions wrote, is the defaults)."""

    priority: int = 0
    suspended: bool = False


class BatchStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A batch's phase and what came of it."""

    phase: BatchPhase = BatchPhase.PENDING
    units_total: int = 0
    units_complete: int = 0
    units_dead: int = 0
    units_cancelled: int = 0
    episodes: int = 0
    frames: int = 0
    dataset_episodes: int = 0
    error: str | None = None
    merge_failed: bool = False  # Failed in the merge: staged episodes kept for retry_merge
    watching: bool = False  # a watched batch not yet closed: Running, publishing as it goes
    updated_at: float = 0.0
    finished_at: float | None = None


class WorkUnit(msgspec.Struct, frozen=True, kw_only=True):
    """One recording of a batch, converted into one staged episode.

    ``attempts`` counts conversions that ended in an error; ``lost`` counts claims whose worker
    died (re-queued by the reaper). ``staged`` is the URL of the finished staged episode.
    ``retry_after``: a unit re-queued after a transient error is claimed only once it has waited
    this many seconds in the queue, on the claiming worker's own clock (pods' clocks are never
    compared, see :mod:`roboflow_distributed.liveness`).
    """

    id: str
    batch: str
    source: str
    size: int
    config_hash: str
    seq: int
    task: str | None = None  # the task of its source (a manifest's), over the batch's
    status: UnitStatus = UnitStatus.PENDING
    owner: str | None = None
    attempts: int = 0
    lost: int = 0
    max_attempts: int = 3
    claims: int = 0
    error: str | None = None
    error_kind: str | None = None
    staged: str | None = None
    frames: int = 0
    episodes: int = 1  # staged episodes: one, or one per skill mark
    updated_at: float = 0.0
    retry_after: float = 0.0


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """A pod saying it is alive, and what it works on.

    Liveness goes by the record's store version, which every beat changes, timed on the
    observer's own clock (:mod:`roboflow_distributed.liveness`); ``at`` and ``started_at`` are the
    pod's own wall clock, for people only. ``progress`` grows while the pod's conversion of
    ``unit`` makes progress (frames staged, bytes moved), so a reaper can tell a busy pod from one
    whose conversion is stuck. A worker adds the jobs it completed and their frames since it
    started (``jobs_done``, ``frames_done``), for the console.
    """

    pod: str
    roles: list[str]
    at: float
    started_at: float
    unit: str | None = None
    progress: int = 0
    host: str = ""
    pid: int = 0
    jobs_done: int = 0
    frames_done: int = 0


class Lock(msgspec.Struct, frozen=True, kw_only=True):
    """A lease: held until it stands still (unrenewed) for ``ttl`` seconds on an observer's clock;
    ``fencing`` grows with every new holder (see :mod:`roboflow_distributed.locks`)."""

    owner: str
    fencing: int
    ttl: float


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A unit's progress, saved while it converts (and kept for a restarted unit).

    ``segments`` closed segments of the episode are in the staging area under ``prefix``; a
    later claim downloads them and resumes after them. ``staged`` is set once the whole staged
    episode is uploaded.
    """

    unit: str
    pod: str
    claim: int
    frames_done: int = 0
    frames_total: int = 0
    prefix: str | None = None
    segments: int = 0
    staged: str | None = None
    updated_at: float = 0.0


class Sighting(msgspec.Struct, frozen=True, kw_only=True):
    """A recording a watched batch's scanner saw but has not added: added once a later listing
    shows it the same size (it is no longer being written)."""

    url: str
    size: int


class MergeState(msgspec.Struct, frozen=True, kw_only=True):
    """The finalizer's record of a merge: which units, onto how many existing episodes, and how
    many of them are published so far."""

    batch: str
    units: list[str]
    base_episodes: int
    started_at: float
    published: int = 0


_R = TypeVar("_R", bound=msgspec.Struct)


@dataclass(frozen=True, slots=True)
class Versioned(Generic[_R]):
    """A record with the store version it was read at (the version to compare against)."""

    record: _R
    version: int


def encode(record: msgspec.Struct) -> bytes:
    """The record's wire form (JSON)."""
    return msgspec.json.encode(record)


def decode(entry: Entry, kind: type[_R]) -> Versioned[_R]:
    """Decode an entry into a record.

    Raises:
        CoordinationError: The value is not a valid ``kind`` (names the key).
    """
    try:
        return Versioned(msgspec.json.decode(entry.value, type=kind), entry.version)
    except msgspec.ValidationError as err:
        raise CoordinationError(f"invalid {kind.__name__} record: {err}", key=entry.key) from err
    except msgspec.DecodeError as err:
        raise CoordinationError(f"{kind.__name__} record is not JSON: {err}", key=entry.key) from err


def read(store: Store, key: str, kind: type[_R]) -> Versioned[_R] | None:
    """The record at ``key`` with its version, or ``None``."""
    entry = store.get(key)
    return None if entry is None else decode(entry, kind)


def scan(store: Store, prefix: str, kind: type[_R]) -> list[Versioned[_R]]:
    """Every record under ``prefix``, in key order."""
    return [decode(e, kind) for e in store.scan(prefix)]
