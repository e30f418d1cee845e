"""Where each merged episode goes: file positions, index ranges, video spans (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from roboflow_dataset.lerobot.staging import StagedEpisode
from roboflow_dataset.stats import FeatureStats

MB = 1024 * 1024


class FilePos(NamedTuple):
    """A file's place: ``chunk`` directory and ``file`` index (v2.1: the episode index)."""

    chunk: int
    file: int

    def next(self, chunks_size: int) -> FilePos:
        """The following file: ``file`` + 1, or the next chunk after ``chunks_size`` files."""
        if self.file + 1 >= chunks_size:
            return FilePos(self.chunk + 1, 0)
        return FilePos(self.chunk, self.file + 1)


@dataclass(frozen=True)
class VideoSpan:
    """One episode's frames inside a camera's mp4."""

    pos: FilePos
    from_timestamp: float
    to_timestamp: float


@dataclass
class EpisodePlan:
    """Everything the writers need about one merged episode."""

    staged: StagedEpisode
    episode_index: int
    task_index: int
    from_index: int
    data: FilePos
    videos: dict[str, VideoSpan] = field(default_factory=dict)
    stats: dict[str, FeatureStats] = field(default_factory=dict)

    @property
    def to_index(self) -> int:
        """Global ``index`` one past the episode's last row."""
        return self.from_index + self.staged.length


class FileRoller:
    """v3 roll-over: whole episodes go to the current file until it would reach the size limit.

    Args:
        start: The first file to fill (a new file: existing files are never appended to).
        limit_bytes: A new file starts when (current size + incoming size) reaches this.
        chunks_size: Files per chunk directory.
    """

    def __init__(self, start: FilePos, *, limit_bytes: int, chunks_size: int) -> None:
        self._pos = start
        self._limit = limit_bytes
        self._chunks_size = chunks_size
        self._size = 0
        self._episodes = 0

    def place(self, episode_index: int, size: int) -> FilePos:
        """The file for an episode of ``size`` bytes (``episode_index`` is unused in v3)."""
        if self._episodes and self._size + size >= self._limit:
            self._pos = self._pos.next(self._chunks_size)
            self._size = self._episodes = 0
        self._size += size
        self._episodes += 1
        return self._pos


class PerEpisodeFiles:
    """v2.1 placement: one file per episode, ``chunks_size`` episodes per chunk."""

    def __init__(self, chunks_size: int) -> None:
        self._chunks_size = chunks_size

    def place(self, episode_index: int, size: int) -> FilePos:
        """The file of ``episode_index`` (``size`` is unused in v2.1)."""
        return FilePos(episode_index // self._chunks_size, episode_index)


Placer = FileRoller | PerEpisodeFiles


def place_videos(plans: list[EpisodePlan], camera: str, placer: Placer, fps: int) -> None:
    """Assign each episode's span of ``camera``: frames before it in its file give its timestamps."""
    previous: FilePos | None = None
    frames_before = 0
    for plan in plans:
        size = sum(path.stat().st_size for path in plan.staged.video_paths(camera))
        pos = placer.place(plan.episode_index, size)
        if pos != previous:
            frames_before = 0
        length = plan.staged.length
        plan.videos[camera] = VideoSpan(pos, frames_before / fps, (frames_before + length) / fps)
        frames_before += length
        previous = pos


def group_by_file(positions: list[FilePos]) -> dict[FilePos, list[int]]:
    """Indices of consecutive items sharing a file, per file, in order."""
    groups: dict[FilePos, list[int]] = {}
    for i, pos in enumerate(positions):
        groups.setdefault(pos, []).append(i)
    return groups
