"""One recording, one episode per skill mark (the original's ``annotation_file``).

The recording is read as in a two-pass conversion (the marks are fractions of the grid, so the
grid comes first); pass 2 sends each mark's frames to its own stager, ``skill-NNN/`` under the
staging directory, with the mark's task, and skips the frames no mark covers. The staging
directory's own ``episode.json`` is written last and lists the skills, so, as for one episode, the
stage is complete exactly when it exists (a worker uploads it last).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roboflow_core import DatasetError, RoboflowConfig
from roboflow_core.annotation import Annotation
from roboflow_dataset.align import iter_aligned
from roboflow_dataset.convert._recording import (
    RecordingPlan,
    _drain,
    _Extractors,
    _Job,
    _plan_pass,
    _Stage,
    open_two_pass,
    salvage_hint,
)
from roboflow_dataset.lerobot import StagedEpisode
from roboflow_dataset.lerobot._atomic import atomic_write_json
from roboflow_dataset.lerobot.staging import MANIFEST

if TYPE_CHECKING:
    from roboflow_storage import Spool

__all__ = ["convert_skills", "load_staged"]

_SKILLS = "skills"  # the key of the staging directory's episode.json that lists them


def convert_skills(
    path: str | os.PathLike[str],
    config: RoboflowConfig,
    staging_dir: Path,
    annotation: Annotation,
    *,
    on_planned: Callable[[RecordingPlan], None] | None = None,
    on_frames: Callable[[int], None] | None = None,
    on_read: Callable[[int], None] | None = None,
    spool: Spool | None = None,
) -> list[StagedEpisode]:
    """Convert one recording into one staged episode per mark of ``annotation``, in time order.

    Mark ``i`` covers the frames ``k`` of the recording's grid of ``n`` frames with
    ``start * n <= k < end * n``; its episode's task is ``"{skillAtomic}: {enSkillDetail}"``.

    Args:
        path: The recording (file, bag directory, or store URL).
        config: The conversion config.
        staging_dir: Where the skills are staged (``skill-NNN/``, then ``episode.json``).
        annotation: The marks (checked by :func:`~roboflow_core.annotation.parse_annotation`).
        on_planned: Called once with the grid.
        on_frames: Called with the number of frames read since the last call (marked or not).
        on_read: As for :func:`convert_recording` (messages read by pass 1).
        spool: As for :func:`convert_recording`.

    Raises:
        DatasetError: A mark covers no frame of the grid (naming the mark).
        RoboflowError: As :func:`convert_recording`.
    """
    job = _Job.make(path, config, staging_dir, None, on_planned, on_frames, on_read, spool)
    with salvage_hint(config), open_two_pass(job) as source:
        plan, log_times = _plan_pass(source, job)
        del log_times
        spans = [
            mark.frames(plan.n_frames, label=label, path=job.name)
            for mark, label in zip(annotation.marks, annotation.labels, strict=True)
        ]
        extractors = _Extractors(source, [m for m in config.mappings if m.topic in plan.topics])
        sink = _Skills(job, extractors, annotation, spans)
        frames = iter_aligned(source.messages(list(plan.topics)), plan, extractors.decode)
        return _drain(frames, sink, job)


class _Skills:
    """Pass 2's frames into one stager per mark (marks do not overlap: one is open at a time)."""

    skip = 0

    def __init__(
        self, job: _Job, extractors: _Extractors, annotation: Annotation, spans: list[range]
    ) -> None:
        self._job = job
        self._extractors = extractors
        self._tasks = [mark.task for mark in annotation.marks]
        self._spans = spans
        self._next = 0  # the mark whose frames come next
        self._open: _Stage | None = None
        self._done: list[StagedEpisode] = []
        self._unreported = 0

    def add(self, index: int, values: dict[str, Any]) -> None:
        k = self._next
        if k < len(self._spans) and index in self._spans[k]:
            if self._open is None:
                self._open = self._stage(k)
            self._open.add(index, values)
            if index == self._spans[k].stop - 1:
                self._done.append(self._open.finish())
                self._open, self._next = None, k + 1
        self._unreported += 1
        if self._unreported >= 10:
            self._report()

    def finish(self) -> list[StagedEpisode]:
        if len(self._done) != len(self._spans):
            raise DatasetError(
                f"the recording ended before skill {len(self._done)} of {len(self._spans)} was complete",
                path=self._job.name,
            )
        names = [episode.dir.name for episode in self._done]
        atomic_write_json(self._job.staging_dir / MANIFEST, {_SKILLS: names, "source": self._job.name})
        self._report()
        return self._done

    def abort(self) -> None:
        if self._open is not None:
            self._open.abort()

    def _stage(self, k: int) -> _Stage:
        job, extractors = self._job, self._extractors
        directory = job.staging_dir / f"skill-{k:03d}"
        task = self._tasks[k]
        return _Stage(
            extractors,
            None,
            lambda: job.new_stager(extractors, None, None, "", directory=directory, task=task),
            None,
            job.name,
        )

    def _report(self) -> None:
        if self._job.on_frames is not None and self._unreported:
            self._job.on_frames(self._unreported)
        self._unreported = 0


def load_staged(directory: str | os.PathLike[str]) -> list[StagedEpisode]:
    """The staged episodes of one recording's staging directory: one, or one per skill.

    Raises:
        DatasetError: The stage is incomplete or unreadable.
    """
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = None  # StagedEpisode.load says what is wrong
    if isinstance(manifest, dict) and _SKILLS in manifest:
        return [StagedEpisode.load(directory / name) for name in manifest[_SKILLS]]
    return [StagedEpisode.load(directory)]
