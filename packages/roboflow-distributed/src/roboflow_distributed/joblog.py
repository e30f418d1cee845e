"""Each job's log lines, kept in the coordination store so they outlive the pod that wrote them.

While a worker converts a unit, :class:`JobLogRecorder` collects the log records written for that
job (its INFO milestones and every warning and error, from any thread that runs in the job's
context: the ``batch``/``job`` fields of :func:`roboflow_core.logs.log_fields`, which the worker's
job trace sets and helper threads inherit) into one :class:`JobLog` per claim,
under ``logs/{batch}/{unit}/{claim}``. The record is bounded (the last :data:`MAX_LINES` lines and
:data:`MAX_BYTES` bytes, older lines counted in ``dropped``), every URL in a line loses its query
(where credentials live), and it is saved every few seconds and when the claim ends, so the
console shows why a job died after its pod is gone.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque

import msgspec

from roboflow_core import RoboflowError
from roboflow_core.logs import current_log_fields
from roboflow_core.redact import redact
from roboflow_distributed import keys
from roboflow_distributed.records import WorkUnit, encode, scan
from roboflow_distributed.store import Store

__all__ = ["MAX_BYTES", "MAX_LINES", "JobLog", "JobLogRecorder", "LogLine", "read_job_logs"]

MAX_LINES = 200
MAX_BYTES = 64 * 1024
_MAX_LINE_CHARS = 2000
_SAVE_EVERY_S = 2.0


class LogLine(msgspec.Struct, frozen=True, kw_only=True):
    """One log record: when, how severe, from which logger, the message (credentials removed)."""

    at: float
    level: str
    logger: str
    message: str


class JobLog(msgspec.Struct, frozen=True, kw_only=True):
    """The log lines of one claim of a unit (an attempt), and how the claim ended.

    ``error`` is the reason the claim failed (``None`` while it runs or when it succeeded);
    ``dropped`` counts the older lines left out to stay within the bounds.
    """

    batch: str
    unit: str
    claim: int
    pod: str
    started_at: float
    updated_at: float
    lines: list[LogLine]
    dropped: int = 0
    error: str | None = None


class JobLogRecorder(logging.Handler):
    """Collects one claim's log lines and saves them to the store.

    Use as a context manager around the claim, inside the job's ``log_fields`` (its job trace):
    it is attached to the ``roboflow`` logger (set to INFO when it was quieter, so the milestones
    exist) and keeps the records whose ``batch``/``job`` fields are this unit's; the last lines
    are saved on exit.

    Args:
        store: The coordination store.
        pod: The worker's pod id.
        unit: The claimed unit (its ``claims`` numbers the attempt).
    """

    def __init__(self, store: Store, pod: str, unit: WorkUnit) -> None:
        super().__init__(logging.INFO)
        self.store = store
        self.pod = pod
        self.unit = unit
        self.key = keys.job_log(unit.batch, unit.id, unit.claims)
        self._fields = {"batch": unit.batch, "job": unit.id}
        self.started_at = time.time()
        self.error: str | None = None
        self._lines: deque[LogLine] = deque()
        self._bytes = 0
        self._dropped = 0
        self._saved_at = 0.0
        self._dirty = False
        self._saving = False

    def __enter__(self) -> JobLogRecorder:
        logger = logging.getLogger("roboflow")
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)  # the milestones must be emitted to be kept
        logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("roboflow").removeHandler(self)
        with self.lock or contextlib.nullcontext():
            self.save()

    def emit(self, record: logging.LogRecord) -> None:
        """Keep a record of this job (bounded) and save now and then."""
        if self._saving:
            return
        fields = current_log_fields()
        if fields.get("batch") != self._fields["batch"] or fields.get("job") != self._fields["job"]:
            return
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            message += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        line = LogLine(
            at=record.created,
            level=record.levelname,
            logger=record.name,
            message=redact(message)[:_MAX_LINE_CHARS],
        )
        self._lines.append(line)
        self._bytes += len(line.message) + 64
        while len(self._lines) > MAX_LINES or self._bytes > MAX_BYTES:
            old = self._lines.popleft()
            self._bytes -= len(old.message) + 64
            self._dropped += 1
        self._dirty = True
        if time.monotonic() - self._saved_at >= _SAVE_EVERY_S:
            self.save()

    def failed(self, reason: str) -> None:
        """Note why the claim failed (saved with the lines)."""
        self.error = redact(reason)
        self._dirty = True

    def save(self) -> None:
        """Write the record if it changed; a store failure only loses these lines, never the job."""
        if not self._dirty or self._saving:
            return
        self._saving = True
        try:
            record = JobLog(
                batch=self.unit.batch,
                unit=self.unit.id,
                claim=self.unit.claims,
                pod=self.pod,
                started_at=self.started_at,
                updated_at=time.time(),
                lines=list(self._lines),
                dropped=self._dropped,
                error=self.error,
            )
            self.store.txn(puts={self.key: encode(record)})
            self._dirty = False
        except RoboflowError:
            pass  # the next save (or none): logs are best effort, the unit's own record is not
        finally:
            self._saved_at = time.monotonic()
            self._saving = False


def read_job_logs(store: Store, batch: str, unit: str) -> list[JobLog]:
    """The log records of every claim of a unit, first claim first."""
    return [v.record for v in scan(store, keys.job_logs_of(batch, unit), JobLog)]
