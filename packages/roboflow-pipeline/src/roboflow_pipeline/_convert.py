"""Convert many recordings into one dataset: stage episodes (in parallel), then merge them."""

from __future__ import annotations

import contextlib
import gc
import io
import os
import queue
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from roboflow_core import ConfigError, PipelineError, RoboflowConfig, RoboflowError
from roboflow_core.annotation import Annotation
from roboflow_core.workdirs import process_workdir
from roboflow_dataset.convert import RecordingPlan, stage_recording
from roboflow_dataset.lerobot import StagedEpisode
from roboflow_executor import Progress
from roboflow_media import share_cpus
from roboflow_pipeline.dataset import Dataset
from roboflow_storage import Storage, display_url, prefetch_recording, resolve_inputs

if TYPE_CHECKING:
    from multiprocessing.context import SpawnContext

    from roboflow_storage import Spool

__all__ = ["ConvertSummary", "Failure", "convert"]

DatasetFormat = Literal["lerobot-v3", "lerobot-v2.1"]
OnError = Literal["fail", "skip"]


@dataclass(frozen=True, slots=True)
class Failure:
    """A recording that could not be converted, and why."""

    path: str
    reason: str
    kind: str


@dataclass(slots=True)
class ConvertSummary:
    """What a conversion did, for the final report."""

    output: str
    fmt: str
    episodes: int = 0
    frames: int = 0
    seconds: float = 0.0
    input_bytes: int = 0
    output_bytes: int = 0
    encoders: set[str] = field(default_factory=set)
    failures: list[Failure] = field(default_factory=list)
    total_episodes: int = 0

    @property
    def frames_per_s(self) -> float:
        """Frames converted per second of wall time."""
        return self.frames / self.seconds if self.seconds else 0.0

    def render(self) -> str:
        """A human summary, several lines."""
        mb = 1024 * 1024
        secs = max(self.seconds, 1e-9)
        lines = [
            f"dataset   {self.output} ({self.fmt})",
            f"episodes  {self.episodes} converted, {self.total_episodes} in the dataset",
            f"frames    {self.frames} in {self.seconds:.2f} s = {self.frames_per_s:,.1f} frames/s",
            f"input     {self.input_bytes / mb:,.1f} MB ({self.input_bytes / mb / secs:,.1f} MB/s)",
            f"output    {self.output_bytes / mb:,.1f} MB ({self.output_bytes / mb / secs:,.1f} MB/s)",
            f"encoder   {', '.join(sorted(self.encoders)) or 'none (no cameras)'}",
        ]
        if self.failures:
            lines.append(f"skipped   {len(self.failures)} recording(s):")
            lines.extend(f"  - {f.path}: {f.kind}: {f.reason}" for f in self.failures)
        return "\n".join(lines)


# --- worker side -------------------------------------------------------------------------------

_EVENTS: Any = None


def _init_worker(events: Any, jobs: int = 1) -> None:
    global _EVENTS
    _EVENTS = events
    share_cpus(jobs)  # the encoders of `jobs` processes share the CPUs
    gc.freeze()  # the imported modules live on: no collection walks them again, the exit's included


def _stage(
    path: str,
    config: RoboflowConfig,
    staging: Path,
    task: str | None,
    annotation: Annotation | None,
    spool: Spool | None,
) -> list[StagedEpisode]:
    """Convert one recording (one episode, or one per skill mark); runs in a worker process (or
    in-process for one job)."""
    events = _EVENTS

    def planned(p: RecordingPlan) -> None:
        events.put(("planned", p.plan.n_frames, p.input_bytes))

    def frames(n: int) -> None:
        events.put(("frames", n, 0))

    return stage_recording(
        path,
        config,
        staging,
        task=task,
        annotation=annotation,
        on_planned=planned,
        on_frames=frames,
        spool=spool,
    )


# --- parent side -------------------------------------------------------------------------------


@contextmanager
def _drain(events: Any, progress: Progress, summary: ConvertSummary) -> Iterator[None]:
    """Feed worker events into the progress bar until the body ends (a ``None`` event stops it)."""

    def run() -> None:
        while (event := events.get()) is not None:
            kind, n, nbytes = event
            if kind == "planned":
                progress.add_total(n)
                summary.input_bytes += nbytes
            else:
                progress.advance(n)

    thread = threading.Thread(target=run, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        events.put(None)
        thread.join()


def _failure(path: str, err: BaseException) -> Failure:
    path = display_url(path)  # a store URL may carry credentials in its query
    if isinstance(err, RoboflowError):
        return Failure(path, str(err), type(err).__name__)
    return Failure(path, f"{type(err).__name__}: {err}", "InternalError")


def _run_jobs(
    paths: Sequence[str],
    stage: Callable[[int, str], Future[list[StagedEpisode]]],
    on_error: OnError,
) -> tuple[dict[int, list[StagedEpisode]], list[Failure]]:
    futures = {stage(i, p): (i, p) for i, p in enumerate(paths)}
    staged: dict[int, list[StagedEpisode]] = {}
    failures: list[tuple[int, Failure]] = []
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_EXCEPTION)
        for fut in done:
            i, path = futures[fut]
            err = fut.exception()
            if err is None:
                staged[i] = fut.result()
                continue
            failures.append((i, _failure(path, err)))
            if on_error == "fail":
                for other in pending:
                    other.cancel()
                wait(pending)
                pending = set()
    return staged, [f for _, f in sorted(failures, key=lambda x: x[0])]


def convert(
    inputs: Sequence[str | os.PathLike[str]],
    config: RoboflowConfig,
    output: str | os.PathLike[str] | Storage,
    *,
    fmt: DatasetFormat = "lerobot-v3",
    jobs: int = 1,
    on_error: OnError = "fail",
    tasks: dict[str, str] | None = None,
    annotation: Annotation | None = None,
    progress: Progress | None = None,
    chunks_size: int | None = None,
    spool: Spool | None = None,
) -> ConvertSummary:
    """Convert recordings into one LeRobot dataset at ``output`` (appending if it exists).

    Each recording becomes one episode (or one per skill mark), staged in a worker process
    (``jobs`` at a time); the staged episodes are merged in input order, and the dataset's
    metadata is written last.

    Args:
        inputs: Files, bag directories or globs.
        config: The conversion config.
        output: The dataset directory, or its ``s3://``/``oss://``/``memory://`` URL (or
            :class:`~roboflow_storage.Storage`): merged in a local working directory, then
            uploaded with ``meta/info.json`` last (see :class:`~roboflow_pipeline.dataset.Dataset`).
        fmt: ``lerobot-v3`` (default) or ``lerobot-v2.1``.
        jobs: Recordings converted at once, each in its own process.
        on_error: ``fail`` stops at the first bad recording and writes nothing; ``skip`` converts
            the others and lists the failures in the summary.
        tasks: Per-recording task strings (by resolved recording: ``str`` of its path or URL),
            overriding the config's task.
        annotation: Skill marks (the config's ``annotation_file``): each recording becomes one
            episode per mark, with the mark's task (see :func:`roboflow_dataset.convert.convert_skills`).
        progress: Progress display; a silent one is used when ``None``.
        chunks_size: Episodes (v2.1) or files (v3) per chunk directory of a new dataset (default
            1000); an existing dataset keeps its own.
        spool: Where remote recordings are downloaded to be read (default: each process's
            :func:`~roboflow_storage.default_spool` of the environment). With ``jobs > 1`` each
            worker process makes its own spool under the same root directory with the same bounds.

    Returns:
        The summary; ``failures`` is non-empty when recordings were skipped.

    Raises:
        PipelineError: With ``on_error="fail"``, the first failure (nothing is merged).
        ConfigError: Both ``tasks`` and ``annotation`` are given.
        RoboflowError: Inputs cannot be resolved.
    """
    if annotation is not None and tasks:
        raise ConfigError(
            "the annotation's marks give every episode its task; drop --task/--tasks", key="annotation_file"
        )
    started = time.monotonic()
    paths = [str(p) for p in resolve_inputs(inputs)]  # first: refused inputs leave no output behind
    dataset = Dataset(output)
    summary = ConvertSummary(output=dataset.url, fmt=fmt)
    progress = progress or Progress(stream=io.StringIO())
    with _staging_root(dataset.storage) as staging_root:
        _convert_into(
            paths,
            config,
            dataset,
            staging_root,
            summary,
            progress,
            fmt,
            jobs,
            on_error,
            tasks,
            annotation,
            chunks_size=chunks_size,
            spool=spool,
        )
    summary.seconds = time.monotonic() - started
    return summary


@contextmanager
def _staging_root(storage: Storage) -> Iterator[Path]:
    """Where episodes are staged: beside a local dataset (same disk), else in a temp directory."""
    if storage.is_local:
        out = Path(storage.location.prefix)
        base = out.parent / f".{out.name}.staging"
    else:
        base = Path(tempfile.mkdtemp(prefix="staging-", dir=process_workdir()))
    root = base / uuid.uuid4().hex[:12]
    root.mkdir(parents=True, exist_ok=True)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
        _remove_if_empty(base)


def _convert_into(
    paths: list[str],
    config: RoboflowConfig,
    dataset: Dataset,
    staging_root: Path,
    summary: ConvertSummary,
    progress: Progress,
    fmt: DatasetFormat,
    jobs: int,
    on_error: OnError,
    tasks: dict[str, str] | None,
    annotation: Annotation | None,
    *,
    chunks_size: int | None,
    spool: Spool | None,
) -> None:
    tasks = tasks or {}
    ctx = _spawn_context() if jobs > 1 else None
    events: Any = queue.Queue() if ctx is None else ctx.Queue()
    with _drain(events, progress, summary):
        if ctx is not None:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(
                jobs, mp_context=ctx, initializer=_init_worker, initargs=(events, jobs)
            ) as pool:
                staged, failures = _run_jobs(
                    paths,
                    lambda i, p: pool.submit(
                        _stage, p, config, staging_root / f"{i:06d}", tasks.get(p), annotation, spool
                    ),
                    on_error,
                )
        else:
            _init_worker(events)
            staged, failures = _run_inline(paths, config, staging_root, tasks, annotation, on_error, spool)
    progress.finish()
    summary.failures = failures
    if failures and on_error == "fail":
        first = failures[0]
        raise PipelineError(
            f"{first.kind}: {first.reason} (nothing was written; use --on-error skip "
            "to convert the other recordings)",
            path=first.path,
        )
    ordered = [episode for i in sorted(staged) for episode in staged[i]]
    summary.episodes = len(ordered)
    summary.frames = sum(s.length for s in ordered)
    summary.encoders = {v.backend for s in ordered for v in s.videos.values()}
    if ordered:
        published = dataset.publish(
            ordered,
            fmt=fmt,
            robot_type=config.dataset.robot_type,
            fps=config.dataset.fps,
            chunks_size=chunks_size,
        )
        summary.total_episodes = published.total_episodes
        summary.output_bytes = published.output_bytes


def _spawn_context() -> SpawnContext:
    import multiprocessing  # only -j > 1 starts processes: one job need not import it (~10 ms)

    return multiprocessing.get_context("spawn")


def _run_inline(
    paths: Sequence[str],
    config: RoboflowConfig,
    staging_root: Path,
    tasks: dict[str, str],
    annotation: Annotation | None,
    on_error: OnError,
    spool: Spool | None,
) -> tuple[dict[int, list[StagedEpisode]], list[Failure]]:
    """Convert one recording after another, spooling the next remote one while this one converts."""
    staged: dict[int, list[StagedEpisode]] = {}
    failures: list[Failure] = []
    with ThreadPoolExecutor(1, thread_name_prefix="roboflow-prefetch") as ahead:
        for i, path in enumerate(paths):
            if i + 1 < len(paths):
                ahead.submit(_prefetch_quietly, paths[i + 1], spool)
            try:
                stage = staging_root / f"{i:06d}"
                staged[i] = _stage(path, config, stage, tasks.get(path), annotation, spool)
            except Exception as err:
                failures.append(_failure(path, err))
                if on_error == "fail":
                    break
    return staged, failures


def _prefetch_quietly(path: str, spool: Spool | None) -> None:
    with contextlib.suppress(RoboflowError):  # only a head start: the conversion reports real errors
        prefetch_recording(path, spool=spool)


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()
