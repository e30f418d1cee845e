"""What the operations service returns: JSON-ready records for the CLI, the REST API and the web UI.

Every URL in a view is shown with :func:`~roboflow_storage.display_url` (no query: credentials
live there) and every free-text reason passes :func:`~roboflow_core.redact.redact`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from roboflow_distributed.joblog import JobLog
from roboflow_distributed.records import DEFAULT_TTL_SECONDS, BatchPhase, UnitStatus

__all__ = [
    "Attempt",
    "BatchDetail",
    "BatchPage",
    "BatchSummary",
    "CameraVideo",
    "DatasetView",
    "EpisodeFrames",
    "EpisodeView",
    "FeatureSeries",
    "FeatureView",
    "Job",
    "JobCounts",
    "JobDetail",
    "JobLogs",
    "JobPage",
    "Overview",
    "Point",
    "SubmitRequest",
    "WorkerView",
]


class SubmitRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A batch to submit: what ``roboflow submit`` takes, with the config as TOML text, its
    annotation file (if any) as JSON text, and ``tasks`` by source (a manifest's)."""

    sources: Annotated[list[Annotated[str, msgspec.Meta(min_length=1)]], msgspec.Meta(min_length=1)]
    config: Annotated[str, msgspec.Meta(min_length=1, description="The TOML config text.")]
    output: Annotated[str, msgspec.Meta(min_length=1)]
    format: Literal["lerobot-v3", "lerobot-v2.1"] = "lerobot-v3"
    task: str | None = None
    annotation: str | None = None
    name: str | None = None
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    staging: str | None = None
    tasks: dict[str, str] | None = None
    episodes_per_chunk: Annotated[int, msgspec.Meta(ge=1)] | None = None
    priority: int = 0
    labels: dict[str, str] = {}
    ttl_seconds: Annotated[int, msgspec.Meta(ge=1)] = DEFAULT_TTL_SECONDS
    watch: bool = False


class JobCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Jobs by status."""

    total: int = 0
    pending: int = 0
    processing: int = 0
    complete: int = 0
    failed: int = 0
    dead: int = 0
    cancelled: int = 0

    @property
    def finished(self) -> int:
        """Jobs that will not run again."""
        return self.complete + self.dead + self.cancelled


class BatchSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One batch in a list: phase, job counts, what it produced."""

    id: str
    name: str
    phase: BatchPhase
    output: str
    format: str
    submitted_at: float
    submitted_by: str
    updated_at: float
    finished_at: float | None
    jobs: JobCounts
    frames: int
    episodes: int
    error: str | None
    merge_failed: bool
    priority: int = 0
    labels: dict[str, str] = {}
    ttl_seconds: int = DEFAULT_TTL_SECONDS
    watching: bool = False  # a watched batch not yet closed (phase running)


class Point(msgspec.Struct, frozen=True, kw_only=True):
    """A point of a time series: a time (Unix seconds) and a value."""

    t: float
    value: float


class FeatureView(msgspec.Struct, frozen=True, kw_only=True):
    """A dataset feature (column or camera)."""

    name: str
    dtype: str
    shape: list[int]
    names: list[str] | None = None


class DatasetView(msgspec.Struct, frozen=True, kw_only=True):
    """A dataset's summary from its ``meta/info.json``."""

    url: str
    codebase_version: str
    robot_type: str | None
    fps: int
    total_episodes: int
    total_frames: int
    features: list[FeatureView]
    cameras: list[str]


class BatchDetail(msgspec.Struct, frozen=True, kw_only=True):
    """One batch: its spec, counts, progress in frames, throughput, and the dataset it produced."""

    batch: BatchSummary
    sources: list[str]
    staging: str
    config_hash: str
    task: str | None
    max_attempts: int
    episodes_per_chunk: int | None
    frames_done: int
    frames_total: int
    frames_per_s: float
    throughput: list[Point]
    dataset: DatasetView | None
    dataset_error: str | None


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """One job (a recording of a batch): status, attempts, owner, progress, last error."""

    ref: str
    batch: str
    id: str
    source: str
    status: UnitStatus
    attempts: int
    max_attempts: int
    lost: int
    claims: int
    owner: str | None
    frames_done: int
    frames_total: int
    updated_at: float
    error: str | None
    error_kind: str | None


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """One claim of a job: which pod, when, how many log lines, why it failed (if it did)."""

    claim: int
    pod: str
    started_at: float
    updated_at: float
    lines: int
    error: str | None


class JobDetail(msgspec.Struct, frozen=True, kw_only=True):
    """One job with its checkpointed progress and its attempts."""

    job: Job
    segments: int
    checkpoint_at: float | None
    attempts: list[Attempt]


class JobLogs(msgspec.Struct, frozen=True, kw_only=True):
    """A job's log lines, one record per claim, first claim first."""

    job: str
    claims: list[JobLog]


class Page(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    offset: int
    limit: int


class BatchPage(Page, frozen=True, kw_only=True):
    """A page of batches, newest first."""

    items: list[BatchSummary]


class JobPage(Page, frozen=True, kw_only=True):
    """A page of jobs, in batch then source order."""

    items: list[Job]


class WorkerView(msgspec.Struct, frozen=True, kw_only=True):
    """A pod from its heartbeat: roles, liveness, current job, jobs and frames done, frames/s."""

    pod: str
    roles: list[str]
    host: str
    alive: bool
    heartbeat_age_s: float
    started_at: float
    current_job: str | None
    jobs_done: int
    frames_done: int
    frames_per_s: float


class Overview(msgspec.Struct, frozen=True, kw_only=True):
    """The dashboard: batches by phase, jobs of the recent batches by status, workers, throughput."""

    batches: dict[str, int]
    jobs: JobCounts
    workers_alive: int
    workers_stale: int
    frames_per_s: float
    throughput: list[Point]
    recent: list[BatchSummary]


class EpisodeView(msgspec.Struct, frozen=True, kw_only=True):
    """An episode of a dataset."""

    index: int
    length: int
    tasks: list[str]


class CameraVideo(msgspec.Struct, frozen=True, kw_only=True):
    """Where an episode's frames of one camera are: a video file and the span of the episode in it."""

    camera: str
    path: str
    from_s: float
    to_s: float


class FeatureSeries(msgspec.Struct, frozen=True, kw_only=True):
    """A vector feature over an episode: one list of values per element."""

    name: str
    names: list[str]
    values: list[list[float]]


class EpisodeFrames(msgspec.Struct, frozen=True, kw_only=True):
    """An episode's timestamps, its state/action vectors (every ``stride``-th frame) and videos."""

    episode: int
    fps: int
    length: int
    stride: int
    timestamps: list[float]
    series: list[FeatureSeries]
    videos: list[CameraVideo]


JobStatusFilter = Literal["pending", "processing", "complete", "failed", "dead", "cancelled"]
PhaseFilter = Literal["pending", "discovering", "running", "merging", "complete", "failed", "cancelled"]
