"""What differs between the v3.0 and v2.1 layouts: paths, file placement, episode metadata, info fields."""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from roboflow_dataset.lerobot._arrow import from_values
from roboflow_dataset.lerobot._atomic import TMP_SUFFIX, atomic_write, atomic_write_jsonl
from roboflow_dataset.lerobot._plan import MB, EpisodePlan, FilePos, FileRoller, PerEpisodeFiles, Placer
from roboflow_dataset.lerobot.features import FeatureSpec
from roboflow_dataset.lerobot.reader import EpisodeRow, read_jsonl
from roboflow_dataset.stats import STAT_NAMES

__all__ = ["LAYOUTS", "DatasetFormat", "Layout", "layout_for", "remove_orphans"]

DatasetFormat = Literal["lerobot-v3", "lerobot-v2.1"]

_META_EPISODES = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
_META_RE = re.compile(r"meta/episodes/chunk-(\d+)/file-(\d+)\.parquet$")
_META_POINTER = "meta/episodes/chunk_index"

_TASKS_SCHEMA = pa.schema(
    [("task_index", pa.int64()), ("task", pa.string())],
    metadata={
        "pandas": json.dumps(
            {
                "index_columns": ["task"],
                "column_indexes": [
                    {
                        "name": None,
                        "field_name": None,
                        "pandas_type": "unicode",
                        "numpy_type": "object",
                        "metadata": {"encoding": "UTF-8"},
                    }
                ],
                "columns": [
                    {
                        "name": "task_index",
                        "field_name": "task_index",
                        "pandas_type": "int64",
                        "numpy_type": "int64",
                        "metadata": None,
                    },
                    {
                        "name": "task",
                        "field_name": "task",
                        "pandas_type": "unicode",
                        "numpy_type": "object",
                        "metadata": None,
                    },
                ],
                "attributes": {},
                "creator": {"library": "pyarrow", "version": pa.__version__},
            }
        )
    },
)
"""``meta/tasks.parquet``: what ``DataFrame.to_parquet`` writes for a frame of ``task_index`` indexed by
``task`` (lerobot reads it with ``pd.read_parquet``), written without importing pandas."""


class Layout(ABC):
    """One on-disk format of a dataset at ``root``.

    Args:
        root: Dataset directory.
        chunks_size: v3: files per chunk directory; v2.1: episodes per chunk directory.
    """

    codebase_version: ClassVar[str]
    data_path: ClassVar[str]
    video_path: ClassVar[str]
    _pos_keys: ClassVar[tuple[str, str]]

    def __init__(self, root: Path, chunks_size: int) -> None:
        self.root = root
        self.chunks_size = chunks_size

    def data_file(self, pos: FilePos) -> Path:
        """Path of the data parquet at ``pos``."""
        return self.root / self.data_path.format(**dict(zip(self._pos_keys, pos, strict=True)))

    def video_file(self, key: str, pos: FilePos) -> Path:
        """Path of camera ``key``'s mp4 at ``pos``."""
        return self.root / self.video_path.format(
            video_key=key, **dict(zip(self._pos_keys, pos, strict=True))
        )

    @abstractmethod
    def placer(self, prefix: str, episodes: Sequence[EpisodeRow], limit_mb: int) -> Placer:
        """Placement of new episodes' files (``prefix``: ``data`` or ``videos/<key>``) after ``episodes``."""

    @abstractmethod
    def referenced(self, episodes: Sequence[EpisodeRow], video_keys: Sequence[str]) -> set[Path]:
        """Data, video and episodes-metadata files the existing ``episodes`` point to."""

    @abstractmethod
    def write_episodes(
        self,
        existing: Sequence[EpisodeRow],
        plans: Sequence[EpisodePlan],
        stats_features: Sequence[FeatureSpec],
        tasks: Sequence[str],
    ) -> None:
        """Write the new episodes' metadata (after the ``existing`` ones) and the whole task list."""

    @abstractmethod
    def size_fields(
        self, *, total_episodes: int, cameras: int, data_mb: int, video_mb: int
    ) -> dict[str, Any]:
        """The format's own ``info.json`` fields (chunking, file sizes, counts)."""


class V3Layout(Layout):
    """v3.0: many episodes per file, ``meta/episodes/*`` parquet, ``meta/tasks.parquet``."""

    codebase_version = "v3.0"
    data_path = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    video_path = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    _pos_keys = ("chunk_index", "file_index")

    def placer(self, prefix: str, episodes: Sequence[EpisodeRow], limit_mb: int) -> Placer:
        last = _last_pos(episodes, prefix)
        start = FilePos(0, 0) if last is None else last.next(self.chunks_size)
        return FileRoller(start, limit_bytes=limit_mb * MB, chunks_size=self.chunks_size)

    def referenced(self, episodes: Sequence[EpisodeRow], video_keys: Sequence[str]) -> set[Path]:
        files = {self.data_file(pos) for pos in _positions(episodes, "data")}
        if _without_pointers(episodes):  # which file holds which episode is unknown: keep them all
            files |= set(self.root.glob("meta/episodes/*/*.parquet"))
        else:  # the ones pointed to (none for a new dataset: every episodes file is a leftover)
            files |= {
                self.root / _META_EPISODES.format(chunk_index=c, file_index=f)
                for c, f in _positions(episodes, "meta/episodes")
            }
        for key in video_keys:
            files |= {self.video_file(key, pos) for pos in _positions(episodes, f"videos/{key}")}
        return files

    def write_episodes(
        self,
        existing: Sequence[EpisodeRow],
        plans: Sequence[EpisodePlan],
        stats_features: Sequence[FeatureSpec],
        tasks: Sequence[str],
    ) -> None:
        # the file after the ones the dataset's episodes point to, like data and videos: a merge of
        # the same episodes redone after an interrupted one (or by a writer that lost the dataset
        # meanwhile) writes the same file, so rows can never be there twice
        last = _last_pos(existing, "meta/episodes")
        if _without_pointers(existing):
            on_disk = [_META_RE.search(p.as_posix()) for p in self.root.glob("meta/episodes/*/*.parquet")]
            last = max((FilePos(int(m[1]), int(m[2])) for m in on_disk if m), default=None)
        pos = FilePos(0, 0) if last is None else last.next(self.chunks_size)
        table = _episodes_table(plans, stats_features, pos)
        path = self.root / _META_EPISODES.format(chunk_index=pos.chunk, file_index=pos.file)
        atomic_write(path, lambda temp: pq.write_table(table, temp))
        columns = [from_values(range(len(tasks)), pa.int64()), from_values(tasks, pa.string())]
        tasks_table = pa.Table.from_arrays(columns, schema=_TASKS_SCHEMA)
        atomic_write(self.root / "meta/tasks.parquet", lambda temp: pq.write_table(tasks_table, temp))

    def size_fields(
        self, *, total_episodes: int, cameras: int, data_mb: int, video_mb: int
    ) -> dict[str, Any]:
        return {
            "chunks_size": self.chunks_size,
            "data_files_size_in_mb": data_mb,
            "video_files_size_in_mb": video_mb,
        }


class V21Layout(Layout):
    """v2.1: one file per episode, JSON-lines metadata."""

    codebase_version = "v2.1"
    data_path = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
    video_path = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
    _pos_keys = ("episode_chunk", "episode_index")

    def placer(self, prefix: str, episodes: Sequence[EpisodeRow], limit_mb: int) -> Placer:
        return PerEpisodeFiles(self.chunks_size)

    def referenced(self, episodes: Sequence[EpisodeRow], video_keys: Sequence[str]) -> set[Path]:
        placer = PerEpisodeFiles(self.chunks_size)
        files: set[Path] = set()
        for index in range(len(episodes)):
            pos = placer.place(index, 0)
            files.add(self.data_file(pos))
            files |= {self.video_file(key, pos) for key in video_keys}
        return files

    def write_episodes(
        self,
        existing: Sequence[EpisodeRow],
        plans: Sequence[EpisodePlan],
        stats_features: Sequence[FeatureSpec],
        tasks: Sequence[str],
    ) -> None:
        meta = self.root / "meta"
        first = plans[0].episode_index  # rows from an interrupted merge are dropped
        old_episodes = [r for r in _read_optional(meta / "episodes.jsonl") if r["episode_index"] < first]
        old_stats = [r for r in _read_optional(meta / "episodes_stats.jsonl") if r["episode_index"] < first]
        rows = [
            {"episode_index": p.episode_index, "tasks": [p.staged.task], "length": p.staged.length}
            for p in plans
        ]
        stats = [
            {"episode_index": p.episode_index, "stats": {f.name: p.stats[f.name] for f in stats_features}}
            for p in plans
        ]
        atomic_write_jsonl(meta / "episodes.jsonl", old_episodes + rows)
        atomic_write_jsonl(meta / "episodes_stats.jsonl", old_stats + stats)
        atomic_write_jsonl(meta / "tasks.jsonl", [{"task_index": i, "task": t} for i, t in enumerate(tasks)])

    def size_fields(
        self, *, total_episodes: int, cameras: int, data_mb: int, video_mb: int
    ) -> dict[str, Any]:
        return {
            "total_videos": total_episodes * cameras,
            "total_chunks": math.ceil(total_episodes / self.chunks_size),
            "chunks_size": self.chunks_size,
        }


LAYOUTS: dict[DatasetFormat, type[Layout]] = {"lerobot-v3": V3Layout, "lerobot-v2.1": V21Layout}


def layout_for(fmt: DatasetFormat, root: Path, chunks_size: int) -> Layout:
    """The layout of ``fmt`` for the dataset at ``root``."""
    return LAYOUTS[fmt](root, chunks_size)


def remove_orphans(root: Path, keep: set[Path]) -> None:
    """Delete data, video and episodes-metadata files no episode points to, and temporary files.

    They are leftovers of an interrupted merge; LeRobot's reader globs ``data/*/*.parquet`` and
    ``meta/episodes/*/*.parquet``, so they must not stay.
    """
    patterns = ("data/**/*.parquet", "videos/**/*.mp4", "meta/episodes/**/*.parquet", f"**/.*{TMP_SUFFIX}")
    for pattern in patterns:
        for path in root.glob(pattern):
            if path.is_file() and path not in keep:
                path.unlink()


def _read_optional(path: Path) -> list[dict[str, Any]]:
    return read_jsonl(path) if path.exists() else []


def _positions(episodes: Sequence[EpisodeRow], prefix: str) -> list[FilePos]:
    chunk, file = f"{prefix}/chunk_index", f"{prefix}/file_index"
    return sorted({FilePos(int(e[chunk]), int(e[file])) for e in episodes if e.get(chunk) is not None})


def _last_pos(episodes: Sequence[EpisodeRow], prefix: str) -> FilePos | None:
    positions = _positions(episodes, prefix)
    return positions[-1] if positions else None


def _without_pointers(episodes: Sequence[EpisodeRow]) -> bool:
    """Whether some episodes were written without the ``meta/episodes/*`` columns naming their file."""
    return any(e.get(_META_POINTER) is None for e in episodes)


def _stat_type(feature: FeatureSpec, stat: str) -> pa.DataType:
    if stat == "count":
        return pa.list_(pa.int64())
    if feature.is_video:
        return pa.list_(pa.list_(pa.list_(pa.float64())))
    if stat in ("min", "max") and feature.dtype.startswith(("int", "bool")):
        return pa.list_(pa.int64())
    return pa.list_(pa.float64())


def _episodes_table(
    plans: Sequence[EpisodePlan], stats_features: Sequence[FeatureSpec], pos: FilePos
) -> pa.Table:
    """``meta/episodes`` rows with every column of the v3.0 format, in LeRobot's order and types."""
    columns: dict[str, pa.Array] = {}

    def add(name: str, values: list[Any], kind: pa.DataType) -> None:
        columns[name] = from_values(values, kind)

    add("episode_index", [p.episode_index for p in plans], pa.int64())
    add("tasks", [[p.staged.task] for p in plans], pa.list_(pa.string()))
    add("length", [p.staged.length for p in plans], pa.int64())
    add("data/chunk_index", [p.data.chunk for p in plans], pa.int64())
    add("data/file_index", [p.data.file for p in plans], pa.int64())
    add("dataset_from_index", [p.from_index for p in plans], pa.int64())
    add("dataset_to_index", [p.to_index for p in plans], pa.int64())
    for key in plans[0].videos:
        add(f"videos/{key}/chunk_index", [p.videos[key].pos.chunk for p in plans], pa.int64())
        add(f"videos/{key}/file_index", [p.videos[key].pos.file for p in plans], pa.int64())
        add(f"videos/{key}/from_timestamp", [p.videos[key].from_timestamp for p in plans], pa.float64())
        add(f"videos/{key}/to_timestamp", [p.videos[key].to_timestamp for p in plans], pa.float64())
    for feature in stats_features:
        for stat in STAT_NAMES:
            add(
                f"stats/{feature.name}/{stat}",
                [p.stats[feature.name][stat] for p in plans],
                _stat_type(feature, stat),
            )
    add(_META_POINTER, [pos.chunk] * len(plans), pa.int64())
    add("meta/episodes/file_index", [pos.file] * len(plans), pa.int64())
    return pa.table(columns)
