"""The operations service: the one layer between the coordination store and its operators.

``roboflow submit / batch / jobs / health`` and ``roboflow ui`` (REST API and web pages) call
:class:`Operations` and nothing below it, so no store logic is written twice. It returns the
records of :mod:`roboflow_distributed.views`: URLs without their query, reasons without secrets.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from roboflow_core import RoboflowError
from roboflow_core.redact import redact
from roboflow_distributed import batches, keys, lifecycle
from roboflow_distributed.batches import Batch
from roboflow_distributed.datasets import DatasetReader
from roboflow_distributed.joblog import read_job_logs
from roboflow_distributed.liveness import Staleness
from roboflow_distributed.records import (
    BatchPhase,
    BatchSpec,
    Checkpoint,
    Heartbeat,
    UnitStatus,
    WorkUnit,
    read,
    scan,
)
from roboflow_distributed.store import Store
from roboflow_distributed.views import (
    Attempt,
    BatchDetail,
    BatchPage,
    BatchSummary,
    Job,
    JobCounts,
    JobDetail,
    JobLogs,
    JobPage,
    Overview,
    Point,
    SubmitRequest,
    WorkerView,
)
from roboflow_storage import display_url

__all__ = ["MAX_PAGE", "Operations"]

MAX_PAGE = 500
_RECENT = 10
_SERIES_POINTS = 60


def _reason(text: str | None) -> str | None:
    return redact(text) if text else text


class Operations:
    """Everything an operator does with batches, jobs, workers and datasets.

    Args:
        store: The coordination store.
        heartbeat_timeout: Seconds after which a pod's heartbeat counts as stale.
    """

    def __init__(self, store: Store, *, heartbeat_timeout: float = 30.0) -> None:
        self.store = store
        self.heartbeat_timeout = heartbeat_timeout
        self._beats = Staleness()  # since when each heartbeat stood still, on this clock
        self._first: dict[str, int] = {}  # each heartbeat's version when this service first saw it
        self._since = self._beats.clock()

    # --- batches ----------------------------------------------------------------------------

    def submit(self, request: SubmitRequest, *, config_source: str = "<request>") -> BatchDetail:
        """Validate and store a batch (see :func:`~roboflow_distributed.batches.submit_batch`)."""
        spec = batches.submit_batch(
            self.store,
            request.sources,
            request.config,
            request.output,
            config_source=config_source,
            fmt=request.format,
            task=request.task,
            annotation=request.annotation,
            max_attempts=request.max_attempts,
            name=request.name,
            staging=request.staging,
            tasks=request.tasks,
            episodes_per_chunk=request.episodes_per_chunk,
            priority=request.priority,
            labels=request.labels,
            ttl_seconds=request.ttl_seconds,
            watch=request.watch,
        )
        return self.batch(spec.id)

    def batches(
        self,
        *,
        phase: BatchPhase | None = None,
        labels: Mapping[str, str] | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> BatchPage:
        """Batches, newest first, optionally only those in ``phase`` and with every label of ``labels``."""
        found = [
            b
            for b in reversed(batches.list_batches(self.store))
            if (phase is None or b.status.record.phase == phase) and batches.has_labels(b.spec, labels or {})
        ]
        limit = min(max(limit, 1), MAX_PAGE)
        page = found[offset : offset + limit]
        return BatchPage(
            items=[self._summary(b, self._units(b.spec.id)) for b in page],
            total=len(found),
            offset=offset,
            limit=limit,
        )

    def batch(self, batch_id: str) -> BatchDetail:
        """One batch with its counts, progress, throughput and (once merged) its dataset."""
        found = batches.get_batch(self.store, batch_id)
        units = self._units(batch_id)
        saved = self._checkpoints(batch_id)
        summary = self._summary(found, units)
        done = total = 0
        for u in units:
            frames_done, frames_total = _progress(u, saved.get(u.id))
            done += frames_done
            total += frames_total
        end = summary.finished_at or time.time()
        completed = sum(u.frames for u in units if u.status is UnitStatus.COMPLETE)
        dataset, dataset_error = None, None
        if summary.phase is BatchPhase.COMPLETE:
            try:
                dataset = DatasetReader(found.spec.output).summary()
            except RoboflowError as err:
                dataset_error = _reason(str(err))
        spec = found.spec
        return BatchDetail(
            batch=summary,
            sources=[display_url(s) for s in spec.sources],
            staging=display_url(spec.staging),
            config_hash=spec.config_hash,
            task=spec.task,
            max_attempts=spec.max_attempts,
            episodes_per_chunk=spec.episodes_per_chunk,
            frames_done=done,
            frames_total=total,
            frames_per_s=round(completed / max(end - spec.submitted_at, 1e-3), 2),
            throughput=_series(units, spec.submitted_at, end),
            dataset=dataset,
            dataset_error=dataset_error,
        )

    def cancel_batch(self, batch_id: str) -> BatchSummary:
        """Cancel a batch (its waiting jobs are cancelled, nothing is merged)."""
        batches.cancel_batch(self.store, batch_id)
        return self.batch(batch_id).batch

    def retry_merge(self, batch_id: str) -> BatchSummary:
        """Merge again a batch whose merge failed (its staged episodes were kept)."""
        batches.retry_merge(self.store, batch_id)
        return self.batch(batch_id).batch

    def delete_batch(self, batch_id: str, *, with_dataset: bool = False) -> None:
        """Delete a finished batch's records and staging (its dataset too with ``with_dataset``)."""
        lifecycle.delete_batch(self.store, batch_id, with_dataset=with_dataset)

    def suspend_batch(self, batch_id: str, *, release: bool = False) -> tuple[BatchSummary, int]:
        """Stop workers claiming a running batch's jobs (``release``: give its running ones back);
        the batch and how many running jobs were released."""
        _, released = lifecycle.suspend_batch(self.store, batch_id, release=release)
        return self.batch(batch_id).batch, released

    def close_batch(self, batch_id: str) -> BatchSummary:
        """Stop watching a batch's sources: it converts and publishes what it has, then completes."""
        lifecycle.close_batch(self.store, batch_id)
        return self.batch(batch_id).batch

    def resume_batch(self, batch_id: str) -> BatchSummary:
        """Let workers claim a suspended batch's jobs again."""
        lifecycle.resume_batch(self.store, batch_id)
        return self.batch(batch_id).batch

    def dataset(self, batch_id: str) -> DatasetReader:
        """The output dataset of a batch, to look into."""
        return DatasetReader(batches.get_batch(self.store, batch_id).spec.output)

    # --- jobs -------------------------------------------------------------------------------

    def jobs(
        self,
        *,
        batch: str | None = None,
        status: UnitStatus | None = None,
        query: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> JobPage:
        """Jobs of one batch (or all), by status and by a case-insensitive part of the source."""
        if batch is not None:
            batches.get_batch(self.store, batch)  # NotFoundError for an unknown batch
        units = batches.list_units(self.store, batch, status)
        needle = (query or "").strip().lower()
        found = [u.record for u in units if needle in display_url(u.record.source).lower()]
        limit = min(max(limit, 1), MAX_PAGE)
        page = found[offset : offset + limit]
        saved: dict[str, dict[str, Checkpoint]] = {}
        for bid in {u.batch for u in page if u.status is UnitStatus.PROCESSING}:
            saved[bid] = self._checkpoints(bid)
        return JobPage(
            items=[_job(u, saved.get(u.batch, {}).get(u.id)) for u in page],
            total=len(found),
            offset=offset,
            limit=limit,
        )

    def job(self, ref: str) -> JobDetail:
        """One job (``BATCH/UNIT`` or a unique unit id prefix) with its progress and attempts."""
        unit = batches.find_unit(self.store, ref).record
        saved = read(self.store, keys.checkpoint(unit.batch, unit.id), Checkpoint)
        checkpoint = saved.record if saved else None
        attempts = [
            Attempt(
                claim=log.claim,
                pod=log.pod,
                started_at=log.started_at,
                updated_at=log.updated_at,
                lines=len(log.lines) + log.dropped,
                error=log.error,
            )
            for log in read_job_logs(self.store, unit.batch, unit.id)
        ]
        return JobDetail(
            job=_job(unit, checkpoint),
            segments=checkpoint.segments if checkpoint else 0,
            checkpoint_at=checkpoint.updated_at if checkpoint else None,
            attempts=attempts,
        )

    def job_logs(self, ref: str) -> JobLogs:
        """A job's log lines, one record per claim."""
        unit = batches.find_unit(self.store, ref).record
        return JobLogs(job=f"{unit.batch}/{unit.id}", claims=read_job_logs(self.store, unit.batch, unit.id))

    def retry_job(self, ref: str) -> Job:
        """Queue a dead, failed or cancelled job again."""
        return _job(batches.retry_unit(self.store, ref), None)

    def cancel_job(self, ref: str) -> Job:
        """Cancel a job that has not finished."""
        return _job(batches.cancel_unit(self.store, ref), None)

    def delete_job(self, ref: str) -> None:
        """Delete a dead or cancelled job (or any job of a finished batch)."""
        lifecycle.delete_unit(self.store, ref)

    # --- workers and overview ---------------------------------------------------------------

    def workers(self, *, watch: float = 0.0) -> list[WorkerView]:
        """Every pod with a heartbeat: alive ones first, then by id.

        A pod is alive while its heartbeat record keeps changing version, timed on this process's
        own clock (:mod:`roboflow_distributed.liveness`), as the reaper judges it; no pod's clock
        is compared with this machine's. Until this service has watched for a whole timeout, a pod
        is alive when its heartbeat is new to it or changed since it first saw it. ``watch``
        seconds: look once, wait that long, then judge (a one-shot ``roboflow health``). The age
        shown is the pod's own timestamp's, for people.
        """
        if watch > 0:
            self.workers()
            time.sleep(watch)
        now = time.time()
        watched = self._beats.clock() - self._since >= self.heartbeat_timeout
        views = []
        for found in scan(self.store, keys.HEARTBEATS, Heartbeat):
            b, key = found.record, keys.heartbeat(found.record.pod)
            stood = self._beats.age(key, found.version)
            first = self._first.setdefault(key, found.version)
            changed = stood == 0.0 or first != found.version
            views.append(
                WorkerView(
                    pod=b.pod,
                    roles=list(b.roles),
                    host=b.host,
                    alive=stood < self.heartbeat_timeout if watched else changed,
                    heartbeat_age_s=round(max(now - b.at, 0.0), 3),
                    started_at=b.started_at,
                    current_job=b.unit,
                    jobs_done=b.jobs_done,
                    frames_done=b.frames_done,
                    frames_per_s=round(b.frames_done / max(b.at - b.started_at, 1e-3), 2),
                )
            )
        present = {keys.heartbeat(w.pod) for w in views}
        self._beats.keep_only(present)
        self._first = {k: v for k, v in self._first.items() if k in present}
        return sorted(views, key=lambda w: (not w.alive, w.pod))

    def phases(self) -> dict[str, int]:
        """How many batches are in each phase."""
        return _phases(batches.list_batches(self.store))

    def overview(self) -> Overview:
        """The dashboard: batches by phase, jobs of the active and recent batches, workers, throughput."""
        every = batches.list_batches(self.store)
        recent = [b for b in every if not b.status.record.phase.terminal]
        recent += [b for b in reversed(every) if b.status.record.phase.terminal][:_RECENT]
        recent.sort(key=lambda b: b.spec.id, reverse=True)
        units = {b.spec.id: self._units(b.spec.id) for b in recent}
        every_unit = [u for us in units.values() for u in us]
        workers = self.workers()
        now = time.time()
        start = min((b.spec.submitted_at for b in recent), default=now)
        return Overview(
            batches=_phases(every),
            jobs=_counts(every_unit),
            workers_alive=sum(w.alive for w in workers),
            workers_stale=sum(not w.alive for w in workers),
            frames_per_s=round(sum(w.frames_per_s for w in workers if w.alive), 2),
            throughput=_series(every_unit, start, now),
            recent=[self._summary(b, units[b.spec.id]) for b in recent],
        )

    # --- helpers ----------------------------------------------------------------------------

    def _units(self, batch_id: str) -> list[WorkUnit]:
        return [u.record for u in batches.list_units(self.store, batch_id)]

    def _checkpoints(self, batch_id: str) -> dict[str, Checkpoint]:
        return {c.record.unit: c.record for c in scan(self.store, keys.checkpoints_of(batch_id), Checkpoint)}

    @staticmethod
    def _summary(batch: Batch, units: list[WorkUnit]) -> BatchSummary:
        spec: BatchSpec = batch.spec
        status = batch.status.record
        return BatchSummary(
            id=spec.id,
            name=spec.name,
            phase=status.phase,
            output=display_url(spec.output),
            format=spec.format,
            submitted_at=spec.submitted_at,
            submitted_by=spec.submitted_by,
            updated_at=status.updated_at,
            finished_at=status.finished_at,
            jobs=_counts(units),
            frames=status.frames or sum(u.frames for u in units if u.status is UnitStatus.COMPLETE),
            episodes=status.episodes,
            error=_reason(status.error),
            merge_failed=status.merge_failed,
            priority=spec.priority,
            labels=dict(spec.labels),
            ttl_seconds=spec.ttl_seconds,
            watching=status.watching,
        )


def _phases(found: Iterable[Batch]) -> dict[str, int]:
    phases = {str(p): 0 for p in BatchPhase}
    for b in found:
        phases[str(b.status.record.phase)] += 1
    return phases


def _counts(units: Iterable[WorkUnit]) -> JobCounts:
    counts = {str(s): 0 for s in UnitStatus}
    total = 0
    for u in units:
        counts[str(u.status)] += 1
        total += 1
    return JobCounts(total=total, **counts)


def _progress(unit: WorkUnit, saved: Checkpoint | None) -> tuple[int, int]:
    if unit.status is UnitStatus.COMPLETE:
        return unit.frames, unit.frames
    if saved is not None:
        return saved.frames_done, max(saved.frames_total, saved.frames_done)
    return 0, 0


def _job(unit: WorkUnit, saved: Checkpoint | None) -> Job:
    done, total = _progress(unit, saved)
    return Job(
        ref=f"{unit.batch}/{unit.id}",
        batch=unit.batch,
        id=unit.id,
        source=display_url(unit.source),
        status=unit.status,
        attempts=unit.attempts,
        max_attempts=unit.max_attempts,
        lost=unit.lost,
        claims=unit.claims,
        owner=unit.owner,
        frames_done=done,
        frames_total=total,
        updated_at=unit.updated_at,
        error=_reason(unit.error),
        error_kind=unit.error_kind,
    )


def _series(units: Iterable[WorkUnit], start: float, end: float) -> list[Point]:
    """Frames converted up to each of ``_SERIES_POINTS`` moments from ``start`` to ``end``."""
    finished = sorted((u.updated_at, u.frames) for u in units if u.status is UnitStatus.COMPLETE)
    if end <= start:
        end = start + 1.0
    step = (end - start) / (_SERIES_POINTS - 1)
    points, total, i = [], 0, 0
    for k in range(_SERIES_POINTS):
        t = start + k * step
        while i < len(finished) and finished[i][0] <= t:
            total += finished[i][1]
            i += 1
        points.append(Point(t=round(t, 3), value=float(total)))
    return points
