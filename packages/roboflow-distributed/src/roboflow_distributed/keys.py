"""Where each record lives in the coordination store: every key is under ``/roboflow/v1/``.

=============================================  =====================================================
key                                            record
=============================================  =====================================================
``batch/specs/{batch}``                        :class:`~roboflow_distributed.records.BatchSpec`
``batch/statuses/{batch}``                     :class:`~roboflow_distributed.records.BatchStatus`
``batch/workunits/{batch}/{unit}``             :class:`~roboflow_distributed.records.WorkUnit`
``batch/pending/{batch}/{unit}``               the queue: present while the unit waits for a worker
``batch/active/{batch}``                       :class:`~roboflow_distributed.records.ActiveBatch` until
                                               the batch is finished: the roles scan these, not every
                                               batch ever submitted
``batch/watched/{batch}/{sha}``                a watched batch's recording (by URL hash) that has its
                                               unit: the same recording is never added twice
``batch/sighted/{batch}/{sha}``                :class:`~roboflow_distributed.records.Sighting`: seen,
                                               not yet stable
``batch/expiry/{time}/{batch}``                present (empty) once the batch finished: its records
                                               are deleted at ``time`` (seconds, zero-padded)
``heartbeat/{pod}``                            :class:`~roboflow_distributed.records.Heartbeat`
``locks/{resource}``                           :class:`~roboflow_distributed.records.Lock`
``state/{batch}/{unit}``                       :class:`~roboflow_distributed.records.Checkpoint`
``configs/{sha256}``                           the TOML text of a config, by its content hash
``merge/{batch}``                              :class:`~roboflow_distributed.records.MergeState`
``logs/{batch}/{unit}/{claim}``                :class:`~roboflow_distributed.joblog.JobLog` (one claim's
                                               log lines, bounded)
=============================================  =====================================================

Each layout that code reads back from a scan has its parser here too (``batch_of_status``,
``batch_of_active``, ``parse_pending``), the inverse of its builder, so no caller splits a key by hand.
"""

from __future__ import annotations

from roboflow_core.errors import CoordinationError

__all__ = [
    "ACTIVE",
    "BATCH_SPECS",
    "BATCH_STATUSES",
    "EXPIRY",
    "HEARTBEATS",
    "PENDING",
    "PREFIX",
    "active",
    "batch_of_active",
    "batch_of_status",
    "batch_spec",
    "batch_status",
    "checkpoint",
    "checkpoints_of",
    "config",
    "expiry",
    "heartbeat",
    "job_log",
    "job_logs_of",
    "lock",
    "merge",
    "parse_expiry",
    "parse_pending",
    "pending",
    "pending_of",
    "sighted",
    "sighted_of",
    "unit",
    "units_of",
    "watched",
    "watched_of",
]

PREFIX = "/roboflow/v1/"
BATCH_SPECS = f"{PREFIX}batch/specs/"
BATCH_STATUSES = f"{PREFIX}batch/statuses/"
PENDING = f"{PREFIX}batch/pending/"
ACTIVE = f"{PREFIX}batch/active/"
EXPIRY = f"{PREFIX}batch/expiry/"
HEARTBEATS = f"{PREFIX}heartbeat/"


def batch_spec(batch: str) -> str:
    """The batch's spec (immutable after submit)."""
    return f"{BATCH_SPECS}{batch}"


def batch_status(batch: str) -> str:
    """The batch's phase and counts."""
    return f"{BATCH_STATUSES}{batch}"


def active(batch: str) -> str:
    """Marks a batch that has not finished (removed with its terminal status, in one txn)."""
    return f"{ACTIVE}{batch}"


def expiry(batch: str, at: float) -> str:
    """Marks a finished batch whose records are deleted at ``at`` (sorted by time)."""
    return f"{EXPIRY}{int(at):012d}/{batch}"


def watched_of(batch: str) -> str:
    """Prefix of the recordings a watched batch has added."""
    return f"{PREFIX}batch/watched/{batch}/"


def watched(batch: str, url_hash: str) -> str:
    """Present once a watched batch added the recording whose URL hashes to ``url_hash``."""
    return f"{watched_of(batch)}{url_hash}"


def sighted_of(batch: str) -> str:
    """Prefix of the recordings a watched batch saw but has not added yet."""
    return f"{PREFIX}batch/sighted/{batch}/"


def sighted(batch: str, url_hash: str) -> str:
    """A recording a watched batch saw (its size then), not yet stable."""
    return f"{sighted_of(batch)}{url_hash}"


def units_of(batch: str) -> str:
    """Prefix of every work unit of a batch."""
    return f"{PREFIX}batch/workunits/{batch}/"


def unit(batch: str, unit_id: str) -> str:
    """One work unit."""
    return f"{units_of(batch)}{unit_id}"


def pending_of(batch: str) -> str:
    """Prefix of the batch's pending queue."""
    return f"{PENDING}{batch}/"


def pending(batch: str, unit_id: str) -> str:
    """A unit's place in the pending queue."""
    return f"{pending_of(batch)}{unit_id}"


def heartbeat(pod: str) -> str:
    """A pod's heartbeat."""
    return f"{HEARTBEATS}{pod}"


def lock(resource: str) -> str:
    """A named lock (``scanner``, ``merge/{batch}``)."""
    return f"{PREFIX}locks/{resource}"


def checkpoints_of(batch: str) -> str:
    """Prefix of every progress checkpoint of a batch."""
    return f"{PREFIX}state/{batch}/"


def checkpoint(batch: str, unit_id: str) -> str:
    """A unit's progress checkpoint."""
    return f"{checkpoints_of(batch)}{unit_id}"


def config(sha256: str) -> str:
    """A config's TOML text, addressed by its content hash."""
    return f"{PREFIX}configs/{sha256}"


def merge(batch: str) -> str:
    """The finalizer's merge record of a batch."""
    return f"{PREFIX}merge/{batch}"


def _after(prefix: str, key: str, parts: int) -> list[str]:
    """The ``parts`` non-empty ``/``-separated names that follow ``prefix`` in ``key``."""
    names = key[len(prefix) :].split("/") if key.startswith(prefix) else []
    if len(names) != parts or not all(names):
        raise CoordinationError(f"not a key of the form {prefix}{'/'.join(['{name}'] * parts)}", key=key)
    return names


def batch_of_status(key: str) -> str:
    """The batch id of a :func:`batch_status` key."""
    return _after(BATCH_STATUSES, key, 1)[0]


def batch_of_active(key: str) -> str:
    """The batch id of an :func:`active` key."""
    return _after(ACTIVE, key, 1)[0]


def parse_pending(key: str) -> tuple[str, str]:
    """The ``(batch, unit)`` of a :func:`pending` key."""
    batch, unit_id = _after(PENDING, key, 2)
    return batch, unit_id


def job_logs_of(batch: str, unit_id: str | None = None) -> str:
    """Prefix of the log records of a unit's claims (or of every unit of the batch)."""
    return f"{PREFIX}logs/{batch}/" + (f"{unit_id}/" if unit_id is not None else "")


def job_log(batch: str, unit_id: str, claim: int) -> str:
    """The log lines of one claim of a unit (zero-padded, so they sort by claim)."""
    return f"{job_logs_of(batch, unit_id)}{claim:06d}"


def parse_expiry(key: str) -> tuple[int, str]:
    """The ``(time, batch)`` of an :func:`expiry` key."""
    due, batch = _after(EXPIRY, key, 2)
    if not due.isdigit():
        raise CoordinationError("an expiry key's time is not a number", key=key)
    return int(due), batch
