"""Recordings into a local LeRobot dataset directory, in this process: the library's entry point.

:func:`stage_recording` stages one recording (one episode, or one per skill mark);
:func:`write_dataset` stages recordings one after another beside the dataset and merges them into
it, ``meta/info.json`` last. ``roboflow_pipeline.convert`` is the same conversion with parallel
processes, prefetching, ``--on-error skip``, the dataset's writer lock and store outputs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from roboflow_core import ConfigError, DatasetError, RoboflowConfig
from roboflow_core.annotation import Annotation
from roboflow_dataset.convert._recording import RecordingPlan, convert_recording
from roboflow_dataset.convert._skills import convert_skills
from roboflow_dataset.lerobot.staging import StagedEpisode
from roboflow_storage import is_remote

if TYPE_CHECKING:
    from roboflow_dataset.lerobot.layout import DatasetFormat
    from roboflow_dataset.lerobot.merge import MergeResult
    from roboflow_storage import Spool

__all__ = ["stage_recording", "write_dataset"]


def stage_recording(
    path: str | os.PathLike[str],
    config: RoboflowConfig,
    staging_dir: Path,
    *,
    task: str | None = None,
    annotation: Annotation | None = None,
    on_planned: Callable[[RecordingPlan], None] | None = None,
    on_frames: Callable[[int], None] | None = None,
    spool: Spool | None = None,
) -> list[StagedEpisode]:
    """Stage one recording: one episode (:func:`convert_recording`), or one per mark of
    ``annotation`` (:func:`convert_skills`, each with its mark's task).

    Raises:
        RoboflowError: As :func:`convert_recording`.
    """
    if annotation is not None:
        return convert_skills(
            path, config, staging_dir, annotation, on_planned=on_planned, on_frames=on_frames, spool=spool
        )
    episode = convert_recording(
        path, config, staging_dir, task=task, on_planned=on_planned, on_frames=on_frames, spool=spool
    )
    return [episode]


def write_dataset(
    recordings: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    config: RoboflowConfig,
    output: str | os.PathLike[str],
    *,
    fmt: DatasetFormat = "lerobot-v3",
    task: str | None = None,
    annotation: Annotation | None = None,
    chunks_size: int | None = None,
    spool: Spool | None = None,
) -> MergeResult:
    """Convert recordings into the LeRobot dataset directory ``output`` (created, or appended to).

    Each recording becomes one episode (or one per skill mark of ``annotation``), in order; they
    are staged in a temporary directory beside ``output`` and merged only when all converted, so
    a failure leaves the dataset as it was. This takes no writer lock: one writer at a time
    (``roboflow_pipeline.Dataset.publish`` takes the dataset's lock, and writes to stores).

    Args:
        recordings: One recording or several: files, bag directories, or their ``file://``,
            ``s3://``, ``oss://`` or ``memory://`` URLs (as :func:`~roboflow_dataset.sources.open_source`).
        config: The conversion config (mappings, fps, video, ...).
        output: The dataset directory.
        fmt: ``lerobot-v3`` (v3.0, default) or ``lerobot-v2.1``.
        task: Every episode's task (default: ``config.dataset.task``).
        annotation: Skill marks: each recording becomes one episode per mark.
        chunks_size: Files (v3) or episodes (v2.1) per chunk directory of a new dataset.
        spool: Where remote recordings are downloaded (default: the environment's spool).

    Returns:
        What the merge wrote: the new episodes' indices, the dataset's totals, the files.

    Raises:
        ConfigError: Both ``task`` and ``annotation`` are given (the marks give the tasks).
        DatasetError: ``output`` is a store URL, no recording is given, or the episodes do not fit
            each other or the dataset already there.
        RoboflowError: A recording cannot be converted (naming file, topic and reason).
    """
    paths = [recordings] if isinstance(recordings, (str, os.PathLike)) else list(recordings)
    if is_remote(output):
        raise DatasetError(
            "write_dataset writes a local directory; roboflow_pipeline.convert publishes to a store",
            path=os.fspath(output),
        )
    if not paths:
        raise DatasetError("no recording to convert", path=os.fspath(output))
    if annotation is not None and task is not None:
        raise ConfigError(
            "the annotation's marks give every episode its task; drop task", key="annotation_file"
        )
    root = Path(output)
    root.parent.mkdir(parents=True, exist_ok=True)
    from roboflow_dataset.lerobot.merge import merge_into_dataset  # pyarrow: imported where rows are merged

    with tempfile.TemporaryDirectory(prefix=f".{root.name}.staging-", dir=root.parent) as staging:
        staged = [
            episode
            for i, path in enumerate(paths)
            for episode in stage_recording(
                path, config, Path(staging, f"{i:06d}"), task=task, annotation=annotation, spool=spool
            )
        ]
        return merge_into_dataset(
            root,
            staged,
            fmt=fmt,
            robot_type=config.dataset.robot_type,
            fps=config.dataset.fps,
            chunks_size=chunks_size,
        )
