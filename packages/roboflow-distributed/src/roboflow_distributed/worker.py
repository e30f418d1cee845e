"""The worker role: claim a unit, convert it into a staged episode in the store, mark it done.

A claim is one transaction: the unit goes Pending -> Processing with this pod as owner and its
pending-queue key is deleted. Every later write compares the unit's version, so a worker that was
presumed dead (and whose unit was re-queued) can never overwrite the new owner's state.

While more units are queued than there are live workers, a worker also claims its next unit
before converting the current one and downloads that unit's input meanwhile: the download
is never wasted on a unit another worker takes. With fewer units queued than workers (the tail
of a batch) it claims one at a time, so no idle worker waits for a unit someone has reserved.
A reserved unit is released on shutdown; a killed pod's is re-queued by the reaper like any other.

Each attempt runs in a thread of its own under a watchdog (:mod:`roboflow_distributed.watchdog`):
an attempt that makes no progress for ``WORKER_STALL_TIMEOUT_SECS`` or runs past
``WORKER_JOB_TIMEOUT_SECS`` is abandoned and its unit re-queued as a failed attempt. While an
abandoned attempt's thread still runs, the worker claims nothing (and gives its reserved unit
back): the input that wedged it goes to other pods.
"""

from __future__ import annotations

import functools
import logging
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from roboflow_core import CoordinationError, DatasetError, RoboflowError, is_transient, telemetry
from roboflow_core.annotation import parse_annotation
from roboflow_core.workdirs import process_workdir
from roboflow_dataset.lerobot import StagedEpisode
from roboflow_distributed import keys, metrics, transitions
from roboflow_distributed.batches import failure_reason, unit_puts
from roboflow_distributed.configs import fetch_config
from roboflow_distributed.joblog import JobLogRecorder
from roboflow_distributed.liveness import Clock, Staleness
from roboflow_distributed.progress import ClaimLost, UnitProgress
from roboflow_distributed.queue import FAIR_EVERY, Queue, claim_order
from roboflow_distributed.records import (
    BatchPhase,
    BatchSpec,
    BatchStatus,
    Heartbeat,
    UnitStatus,
    Versioned,
    WorkUnit,
    encode,
    read,
    scan,
)
from roboflow_distributed.settings import STORE_RETRY, Settings, store_down
from roboflow_distributed.store import Compare, Store
from roboflow_distributed.watchdog import Attempt, Released, watch
from roboflow_pipeline import convert_recording, convert_skills
from roboflow_storage import Spool, Storage, display_url, prefetch_recording, retry_call

__all__ = ["Shutdown", "Worker"]

log = logging.getLogger("roboflow.worker")
_T = TypeVar("_T")


class Shutdown:
    """The pod's stop signal: set once; ``deadline`` is when running work must be released."""

    def __init__(self, grace: float) -> None:
        self.event = threading.Event()
        self.grace = grace
        self.deadline = float("inf")

    def request(self) -> None:
        """Stop claiming work; running work has ``grace`` seconds to finish."""
        if not self.event.is_set():
            self.deadline = time.monotonic() + self.grace
            self.event.set()

    @property
    def overdue(self) -> bool:
        """The grace period is over."""
        return time.monotonic() > self.deadline


class Worker:
    """Converts units one at a time.

    Args:
        store: The coordination store.
        pod: This pod's id (the owner written into claimed units).
        settings: Intervals and limits.
        shutdown: The pod's stop signal.
        spool: Where remote recordings are downloaded to (``None``: the environment's spool,
            :func:`roboflow_storage.default_spool`, resolved when first needed).
    """

    def __init__(
        self,
        store: Store,
        pod: str,
        settings: Settings,
        shutdown: Shutdown,
        *,
        clock: Clock = time.monotonic,
        spool: Spool | None = None,
    ) -> None:
        self.store = store
        self.spool = spool
        self.pod = pod
        self.settings = settings
        self.shutdown = shutdown
        self.current: str | None = None
        self.completed = 0
        self.frames_done = 0  # frames of the units this pod completed
        self._log: JobLogRecorder | None = None  # the running claim's log lines
        self._next: Versioned[WorkUnit] | None = None  # claimed ahead, input downloading
        self._claims = 0  # claims tried: every FAIR_EVERY-th ignores priority
        self._attempt: Attempt | None = None  # of the unit being converted
        self._abandoned: list[Attempt] = []  # given up, their threads maybe still running
        self._beats = Staleness(clock)  # since when each pod's heartbeat stood still
        self._queued = Staleness(clock)  # since when each backing-off unit has waited in the queue

    # --- claiming ---------------------------------------------------------------------------

    def claim(self) -> Versioned[WorkUnit] | None:
        """Take one pending unit (or ``None`` when the queue is empty), of the batch with the highest
        priority that has one (see :mod:`~roboflow_distributed.queue`)."""
        self._claims += 1
        queues = claim_order(self.store, fair=self._claims % FAIR_EVERY == 0)
        live = tuple(keys.units_of(q.batch) for q in queues)
        self._queued.forget(lambda key: not key.startswith(live))  # batches finished or suspended
        for queue in queues:
            won = self._claim_from(queue)
            if won is not None:
                return won
        return None

    def _claim_from(self, queue: Queue) -> Versioned[WorkUnit] | None:
        entries = self.store.scan(keys.pending_of(queue.batch), limit=self.settings.scan_batch_size)
        random.shuffle(entries)  # spread competing workers over the head of the queue
        queued = [keys.unit(*keys.parse_pending(entry.key)) for entry in entries]
        head, of_batch = set(queued), keys.units_of(queue.batch)
        # forget this batch's units no longer at the head of its queue (not other batches')
        self._queued.forget(lambda key: key.startswith(of_batch) and key not in head)
        for entry, ukey in zip(entries, queued, strict=True):
            current = read(self.store, ukey, WorkUnit)
            if current is None or current.record.status is not UnitStatus.PENDING:
                self.store.txn([Compare(entry.key, entry.version)], deletes=[entry.key])  # stale entry
                continue
            retry_after = current.record.retry_after  # backing off after a transient failure
            if retry_after and self._queued.age(ukey, current.version) < retry_after:
                continue
            new = transitions.claim(current.record, owner=self.pod, now=time.time())
            compares = [
                Compare(ukey, current.version),
                Compare(entry.key, entry.version),
                Compare(keys.active(queue.batch), queue.marker_version),  # not suspended meanwhile
            ]
            try:
                won = self.store.txn(compares, {ukey: encode(new)}, [entry.key])
            except CoordinationError:
                won = True  # it may have committed: the unit tells (an unnoticed claim would
                # stay ours, unprocessed, while this pod heartbeats)
            if won:
                mine = self.store_retry(functools.partial(read, self.store, ukey, WorkUnit))
                if mine is not None and mine.record == new:
                    return mine
        return None

    def tick(self) -> bool:
        """Claim (or take the reserved) unit and process it; whether there was one."""
        if self.shutdown.event.is_set():
            return False
        if self.wedged:
            self.release_reserved()
            return False
        unit, self._next = self._next or self.claim(), None
        if unit is None:
            return False
        self.current = f"{unit.record.batch}/{unit.record.id}"
        self._claim_ahead()
        try:
            self.process(unit)
        finally:
            self.current = None
        return True

    @property
    def wedged(self) -> int:
        """How many attempts this worker abandoned are still running (it claims nothing then)."""
        self._abandoned = [a for a in self._abandoned if a.thread is not None and a.thread.is_alive()]
        return len(self._abandoned)

    def doing(self) -> tuple[str | None, int]:
        """The unit being converted (``batch/unit``) and its attempt's progress, for heartbeats."""
        attempt = self._attempt
        return self.current, attempt.progress if attempt is not None else 0

    def release_reserved(self) -> None:
        """Give the unit claimed ahead back to the queue (on shutdown)."""
        unit, self._next = self._next, None
        if unit is not None and self._finish(unit, transitions.release(unit.record, now=time.time())):
            log.info("released %s, claimed ahead", unit.record.id)

    def _claim_ahead(self) -> None:
        """Claim the next unit now and download its input while this one converts, if more units
        are queued than there are live workers (else an idle worker could wait for it).

        Never raises: the unit just claimed must be processed whatever the store does here.
        """
        try:
            self._next = self._reserve()
        except CoordinationError as err:
            log.warning("not claiming ahead: %s", err)
            return
        if self._next is not None:
            threading.Thread(
                target=_prefetch, args=(self._next.record.source, self.spool), name="prefetch", daemon=True
            ).start()

    def _reserve(self) -> Versioned[WorkUnit] | None:
        beats = [b for b in scan(self.store, keys.HEARTBEATS, Heartbeat) if "worker" in b.record.roles]
        still = [self._beats.age(keys.heartbeat(b.record.pod), b.version) for b in beats]
        self._beats.keep_only(keys.heartbeat(b.record.pod) for b in beats)
        workers = sum(age < self.settings.heartbeat_timeout for age in still)
        if len(self.store.scan(keys.PENDING, limit=max(workers, 1) + 1)) <= max(workers, 1):
            return None
        return self.claim()

    # --- processing -------------------------------------------------------------------------

    def process(self, unit: Versioned[WorkUnit]) -> None:
        """Convert a claimed unit and record the outcome (complete, retry, dead or released), in a
        trace of its own, with the job's metrics; the claim's log lines are kept in the store
        (:mod:`roboflow_distributed.joblog`)."""
        rec = unit.record
        attributes = {"roboflow.batch": rec.batch, "roboflow.job": rec.id, "roboflow.pod": self.pod}
        start = time.perf_counter()
        with (
            telemetry.job_trace("roboflow.job", {**attributes, "roboflow.attempt": rec.claims}) as job,
            JobLogRecorder(self.store, self.pod, rec) as self._log,
        ):
            try:
                job.outcome = self._process(unit)
            finally:
                self._log = None
        metrics.JOBS.add(1, {"outcome": job.outcome})
        metrics.JOB_DURATION.record(time.perf_counter() - start, {"outcome": job.outcome})

    def _process(self, unit: Versioned[WorkUnit]) -> str:
        rec = unit.record
        log.info("converting %s (%s, claim %d)", display_url(rec.source), rec.id, rec.claims)
        attempt = self._attempt = Attempt(
            self.settings.stall_timeout, self.settings.job_timeout, overdue=lambda: self.shutdown.overdue
        )
        try:
            spec, status = self._batch(rec)
            if status.phase is BatchPhase.CANCELLED:
                self._finish(unit, transitions.cancel(rec, now=time.time()))
                return "cancelled"
            staging = Storage.from_url(spec.staging)
            prefix, frames = watch(
                lambda: self._convert(unit, spec, staging, attempt),
                attempt,
                name=f"convert-{rec.id}",
            )
            annotation = None if spec.annotation is None else parse_annotation(spec.annotation)
            episodes = 1 if annotation is None else len(annotation.marks)
        except Released:
            log.info("releasing %s: shutting down", rec.id)
            self._finish(unit, transitions.release(rec, now=time.time()))
            return "requeued"
        except ClaimLost:
            log.warning("unit %s was taken over by another worker; dropping this claim", rec.id)
            return "lost"
        except Exception as err:
            return self._failed(unit, err)
        finally:
            self._attempt = None
            if attempt.reason is not None:
                log.warning("abandoned the conversion of %s: %s", rec.id, attempt.reason)
                self._abandoned.append(attempt)
        done = transitions.complete(rec, staged=prefix, frames=frames, episodes=episodes, now=time.time())
        if not self._finish(unit, done):
            return "lost"
        self.store_retry(lambda: self.store.txn(deletes=[keys.checkpoint(rec.batch, rec.id)]))
        self.completed += 1
        metrics.FRAMES.add(frames)
        metrics.INPUT_BYTES.add(rec.size)
        self.frames_done += frames
        log.info("done %s: %d frames", display_url(rec.source), frames)
        return "completed"

    def _batch(self, rec: WorkUnit) -> tuple[BatchSpec, BatchStatus]:
        spec = read(self.store, keys.batch_spec(rec.batch), BatchSpec)
        status = read(self.store, keys.batch_status(rec.batch), BatchStatus)
        if spec is None or status is None:
            raise CoordinationError("the unit's batch is gone", batch=rec.batch)
        return spec.record, status.record

    def _convert(
        self, unit: Versioned[WorkUnit], spec: BatchSpec, staging: Storage, attempt: Attempt
    ) -> tuple[str, int]:
        """Stage the unit's episode (resuming an earlier claim's segments) and upload it (in the
        attempt's thread)."""
        rec = unit.record
        progress = UnitProgress(self.store, self.pod, unit, staging, self.settings, attempt)
        earlier = progress.finished()
        if earlier is not None:
            return earlier
        config = fetch_config(self.store, rec.config_hash)
        workdir = Path(tempfile.mkdtemp(prefix="unit-", dir=process_workdir()))
        episode_dir = workdir / "episode"
        if spec.annotation is not None:  # one episode per skill mark: staged whole (no segments)
            try:
                annotation = parse_annotation(spec.annotation)
                skills = convert_skills(
                    rec.source,
                    config,
                    episode_dir,
                    annotation,
                    on_planned=progress.planned,
                    on_frames=progress.frames,
                    on_read=progress.read,
                    spool=self.spool,
                )
                frames = sum(episode.length for episode in skills)
                return progress.finish(episode_dir, frames), frames
            finally:
                shutil.rmtree(workdir, ignore_errors=True)

        def run(resume: bool) -> StagedEpisode:
            return convert_recording(
                rec.source,
                config,
                episode_dir,
                task=rec.task or spec.task,
                on_planned=progress.planned,
                on_frames=progress.frames,
                segment_frames=self.settings.segment_frames,
                on_segment=lambda segment: progress.segment(segment, episode_dir),
                resume=resume,
                on_read=progress.read,
                spool=self.spool,
            )

        try:
            resumed = progress.restore(episode_dir)
            try:
                episode = run(resumed)
            except DatasetError as err:
                if not resumed:
                    raise
                log.warning("unit %s: cannot resume (%s); converting from the start", rec.id, err)
                shutil.rmtree(episode_dir, ignore_errors=True)
                episode = run(False)
            return progress.finish(episode.dir, episode.length), episode.length
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    # --- outcomes ---------------------------------------------------------------------------

    def _failed(self, unit: Versioned[WorkUnit], err: BaseException) -> str:
        """Retry the unit or make it dead; the outcome."""
        rec = unit.record
        reason, kind = failure_reason(err)
        if self._log is not None:
            self._log.failed(reason)
        transient = is_transient(err)  # a permanent fault (bad input) is dead at once
        delay = self.settings.unit_retry().backoff(rec.attempts)
        new = transitions.fail(
            rec, error=reason, kind=kind, transient=transient, retry_after=delay, now=time.time()
        )
        if new.status is UnitStatus.PENDING:
            log.warning(
                "attempt %d/%d of %s failed, will retry in %.1f s: %s",
                new.attempts,
                rec.max_attempts,
                rec.id,
                delay,
                reason,
            )
        else:
            why = "attempts used up" if transient else "bad input, not retried"
            log.error("%s is dead (%s): %s", display_url(rec.source), why, reason)
        self._finish(unit, new)
        return "failed" if new.status is UnitStatus.PENDING else "dead"

    def _finish(self, unit: Versioned[WorkUnit], new: WorkUnit) -> bool:
        """Write the unit's new record (from :mod:`~roboflow_distributed.transitions`) if the unit
        is still ours, queueing it again when it is Pending; whether it was still ours."""
        rec = unit.record
        ukey = keys.unit(rec.batch, rec.id)
        won = self.store_retry(lambda: self.store.txn([Compare(ukey, unit.version)], unit_puts(new)))
        if not won:
            log.warning("unit %s was taken over meanwhile; dropping this claim's result", rec.id)
        return bool(won)

    def store_retry(self, op: Callable[[], _T]) -> _T | None:
        """Run a store operation, retrying while the store is unreachable (until shutdown is overdue)."""

        def wait(delay: float) -> bool:
            if self.shutdown.overdue:
                return False
            time.sleep(delay)
            return True

        try:
            return retry_call(op, STORE_RETRY, retryable=store_down, wait=wait, on_retry=_store_retry_logged)
        except CoordinationError as err:
            log.error("giving up on the store during shutdown: %s", err)
            return None


def _store_retry_logged(err: BaseException, delay: float) -> None:
    log.warning("store unavailable, retrying in %.1f s: %s", delay, err)


def _prefetch(source: str, spool: Spool | None) -> None:
    try:
        prefetch_recording(source, spool=spool)
    except RoboflowError as err:  # only a head start: the unit's own open reports real errors
        log.info("prefetch of %s failed: %s", display_url(source), err)
