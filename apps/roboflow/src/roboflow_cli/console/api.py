"""The REST API under ``/api/v1``: batches, jobs, workers and datasets, over :class:`Operations`.

Every handler is a thin call into the operations service; errors become JSON answers in
:mod:`roboflow_cli.console.errors`.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.openapi import ResponseSpec
from litestar.params import Parameter
from litestar.response import Response, Stream

from roboflow_cli.console.media import stream_object
from roboflow_distributed.records import BatchPhase, UnitStatus
from roboflow_distributed.service import MAX_PAGE, Operations
from roboflow_distributed.views import (
    BatchDetail,
    BatchPage,
    BatchSummary,
    DatasetView,
    EpisodeFrames,
    EpisodeView,
    Job,
    JobDetail,
    JobLogs,
    JobPage,
    JobStatusFilter,
    Overview,
    PhaseFilter,
    SubmitRequest,
    WorkerView,
)

__all__ = ["ApiController"]

Offset = Annotated[int, Parameter(ge=0, le=1_000_000, description="Items to skip.")]
Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="Items per page.")]
MaxPoints = Annotated[int, Parameter(ge=10, le=20_000, description="At most this many frames (strided).")]


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """Every error answer: the reason (no credentials), the status, details of invalid input."""

    error: str
    status: int
    details: list[dict[str, Any]] | None = None


def _errors(*codes: int) -> dict[int, ResponseSpec]:
    text = {
        400: "Invalid input (the details name the parameter or field)",
        401: "A token is set and the request does not carry it",
        403: "Cross-origin request refused",
        404: "No such batch, job, episode, camera or dataset",
        409: "The request does not fit the current state",
        416: "The range is not satisfiable",
        422: "The dataset's files are unreadable",
        502: "The dataset's storage cannot be read",
        503: "The coordination store cannot be reached",
    }
    return {
        code: ResponseSpec(data_container=ErrorBody, description=text[code], generate_examples=False)
        for code in (*codes, 503)
    }


_READ = _errors(400, 404)
_WRITE = _errors(400, 401, 403, 404, 409)
_DATA = _errors(400, 404, 422, 502)


def _ref(batch_id: str, unit_id: str) -> str:
    return f"{batch_id}/{unit_id}"


class ApiController(Controller):
    """``/api/v1``: JSON in, JSON out (videos as ``video/mp4`` with range requests)."""

    path = "/api/v1"
    tags = ["roboflow"]  # noqa: RUF012 (Controller declares it an instance attribute)

    @get("/overview", sync_to_thread=True, responses=_READ)
    def overview(self, ops: Operations) -> Overview:
        """The dashboard: batches by phase, jobs by status, workers alive and stale, throughput."""
        return ops.overview()

    # --- batches ----------------------------------------------------------------------------

    @get("/batches", sync_to_thread=True, responses=_READ)
    def list_batches(
        self, ops: Operations, phase: PhaseFilter | None = None, offset: Offset = 0, limit: Limit = 50
    ) -> BatchPage:
        """Batches, newest first, optionally in one phase."""
        return ops.batches(phase=BatchPhase(phase) if phase else None, offset=offset, limit=limit)

    @post("/batches", sync_to_thread=True, status_code=201, responses=_WRITE)
    def submit_batch(self, ops: Operations, data: SubmitRequest) -> BatchDetail:
        """Submit recordings as one batch (validated as ``roboflow submit`` does)."""
        return ops.submit(data)

    @get("/batches/{batch_id:str}", sync_to_thread=True, responses=_READ)
    def get_batch(self, ops: Operations, batch_id: str) -> BatchDetail:
        """One batch: counts by status, frames converted, throughput, the dataset it produced."""
        return ops.batch(batch_id)

    @post("/batches/{batch_id:str}/cancel", sync_to_thread=True, status_code=200, responses=_WRITE)
    def cancel_batch(self, ops: Operations, batch_id: str) -> BatchSummary:
        """Cancel a batch: its waiting jobs are cancelled and nothing is merged."""
        return ops.cancel_batch(batch_id)

    @post("/batches/{batch_id:str}/retry-merge", sync_to_thread=True, status_code=200, responses=_WRITE)
    def retry_merge(self, ops: Operations, batch_id: str) -> BatchSummary:
        """Merge again a batch whose merge failed (its staged episodes were kept)."""
        return ops.retry_merge(batch_id)

    @delete("/batches/{batch_id:str}", sync_to_thread=True, status_code=204, responses=_WRITE)
    def delete_batch(self, ops: Operations, batch_id: str) -> None:
        """Forget a finished batch, its jobs and their logs (the dataset stays)."""
        ops.delete_batch(batch_id)

    # --- jobs -------------------------------------------------------------------------------

    @get("/jobs", sync_to_thread=True, responses=_READ)
    def list_jobs(
        self,
        ops: Operations,
        batch: str | None = None,
        status: JobStatusFilter | None = None,
        q: Annotated[str | None, Parameter(max_length=500, description="Part of the source.")] = None,
        offset: Offset = 0,
        limit: Limit = 50,
    ) -> JobPage:
        """Jobs, filtered by batch and status, searched by part of their source."""
        return ops.jobs(
            batch=batch, status=UnitStatus(status) if status else None, query=q, offset=offset, limit=limit
        )

    @get("/jobs/{batch_id:str}/{unit_id:str}", sync_to_thread=True, responses=_READ)
    def get_job(self, ops: Operations, batch_id: str, unit_id: str) -> JobDetail:
        """One job: progress (frames, segments), attempts with their errors, owner."""
        return ops.job(_ref(batch_id, unit_id))

    @get("/jobs/{batch_id:str}/{unit_id:str}/logs", sync_to_thread=True, responses=_READ)
    def get_job_logs(self, ops: Operations, batch_id: str, unit_id: str) -> JobLogs:
        """A job's log lines, one record per claim (bounded, credentials removed)."""
        return ops.job_logs(_ref(batch_id, unit_id))

    @post("/jobs/{batch_id:str}/{unit_id:str}/retry", sync_to_thread=True, status_code=200, responses=_WRITE)
    def retry_job(self, ops: Operations, batch_id: str, unit_id: str) -> Job:
        """Queue a dead, failed or cancelled job again."""
        return ops.retry_job(_ref(batch_id, unit_id))

    @post("/jobs/{batch_id:str}/{unit_id:str}/cancel", sync_to_thread=True, status_code=200, responses=_WRITE)
    def cancel_job(self, ops: Operations, batch_id: str, unit_id: str) -> Job:
        """Cancel a job that has not finished."""
        return ops.cancel_job(_ref(batch_id, unit_id))

    @delete("/jobs/{batch_id:str}/{unit_id:str}", sync_to_thread=True, status_code=204, responses=_WRITE)
    def delete_job(self, ops: Operations, batch_id: str, unit_id: str) -> None:
        """Forget a dead or cancelled job (or any job of a finished batch)."""
        ops.delete_job(_ref(batch_id, unit_id))

    # --- workers ----------------------------------------------------------------------------

    @get("/workers", sync_to_thread=True, responses=_READ)
    def list_workers(self, ops: Operations) -> list[WorkerView]:
        """Pods with their roles, heartbeat age, current job, jobs done and frames/s."""
        return ops.workers()

    # --- datasets ---------------------------------------------------------------------------

    @get("/batches/{batch_id:str}/dataset", sync_to_thread=True, responses=_DATA)
    def get_dataset(self, ops: Operations, batch_id: str) -> DatasetView:
        """The batch's output dataset: episodes, frames, features, cameras."""
        return ops.dataset(batch_id).summary()

    @get("/batches/{batch_id:str}/dataset/episodes", sync_to_thread=True, responses=_DATA)
    def list_episodes(self, ops: Operations, batch_id: str) -> list[EpisodeView]:
        """The dataset's episodes."""
        return ops.dataset(batch_id).episodes()

    @get("/batches/{batch_id:str}/dataset/episodes/{episode:int}", sync_to_thread=True, responses=_DATA)
    def get_episode(
        self, ops: Operations, batch_id: str, episode: int, max_points: MaxPoints = 2000
    ) -> EpisodeFrames:
        """An episode's timestamps and state/action vectors, and where its camera videos are."""
        return ops.dataset(batch_id).episode(episode, max_points=max_points)

    @get(
        "/batches/{batch_id:str}/dataset/episodes/{episode:int}/videos/{camera:str}",
        sync_to_thread=True,
        media_type="video/mp4",
        responses={**_DATA, **_errors(416)},
    )
    def get_video(
        self, ops: Operations, request: Request[Any, Any, Any], batch_id: str, episode: int, camera: str
    ) -> Response[bytes] | Stream:
        """The video file holding ``camera`` of the episode, streamed with HTTP range requests."""
        reader = ops.dataset(batch_id)
        return stream_object(reader.storage, reader.video_key(episode, camera), request.headers.get("range"))
