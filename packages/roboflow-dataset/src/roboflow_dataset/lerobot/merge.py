"""Merging staged episodes into a LeRobot dataset (new or existing), v3.0 or v2.1.

Order of writes, so that an interrupted merge never leaves a dataset that looks complete:
leftovers of an earlier interrupted merge are removed; new data and video files are written (never
into files the existing ``info.json`` describes); then the episodes metadata, tasks and
``stats.json``; every file written and its directories are fsynced; ``meta/info.json`` last,
atomically (fsynced, renamed, its directory fsynced). Until it is replaced, the old ``info.json``
(or none, for a new dataset) describes only files that were complete before the merge began, and
a power loss after it cannot leave it naming files that are not on disk.

Appending needs the existing dataset's ``data_path``/``video_path`` templates to be the ones this
writer uses: its files are found through them, and a file they do not name would be removed as a
leftover. A dataset with other templates is refused before anything is touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from roboflow_core.errors import DatasetError, MediaError
from roboflow_dataset.lerobot._arrow import from_numpy
from roboflow_dataset.lerobot._atomic import TMP_SUFFIX, atomic_write_json, make_durable
from roboflow_dataset.lerobot._plan import EpisodePlan, group_by_file, place_videos
from roboflow_dataset.lerobot.features import DEFAULT_FEATURES, FeatureSpec, arrow_schema, camera_feature
from roboflow_dataset.lerobot.layout import LAYOUTS, DatasetFormat, Layout, layout_for, remove_orphans
from roboflow_dataset.lerobot.reader import (
    INFO,
    STATS,
    EpisodeRow,
    episode_stats,
    read_episodes,
    read_info,
    read_tasks,
)
from roboflow_dataset.lerobot.staging import StagedEpisode
from roboflow_dataset.stats import QUANTILES, FeatureStats, aggregate
from roboflow_media import concat_videos, is_faststart, probe_video

__all__ = ["DEFAULT_CHUNKS_SIZE", "MergeResult", "merge_into_dataset"]

DEFAULT_CHUNKS_SIZE = 1000
"""Files (v3) or episodes (v2.1) per chunk directory of a new dataset (lerobot's default)."""

_PTS_TOLERANCE_S = 1e-4


class MergeResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a merge wrote.

    Attributes:
        root: The dataset directory.
        fmt: Its format.
        episode_indices: Indices given to the merged episodes, in input order.
        total_episodes: Episodes in the dataset after the merge.
        total_frames: Frames in the dataset after the merge.
        files: Data and video files written by this merge.
    """

    root: Path
    fmt: DatasetFormat
    episode_indices: tuple[int, ...]
    total_episodes: int
    total_frames: int
    files: tuple[Path, ...]


@dataclass
class _Existing:
    """The dataset before the merge (empty for a new one)."""

    info: dict[str, Any] | None = None
    episodes: list[EpisodeRow] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)

    @property
    def total_episodes(self) -> int:
        return 0 if self.info is None else int(self.info["total_episodes"])

    @property
    def total_frames(self) -> int:
        return 0 if self.info is None else int(self.info["total_frames"])


def merge_into_dataset(
    root: str | Path,
    staged: Sequence[StagedEpisode],
    *,
    fmt: DatasetFormat = "lerobot-v3",
    robot_type: str | None,
    fps: int,
    data_file_mb: int = 100,
    video_file_mb: int = 200,
    chunks_size: int | None = None,
    check: Callable[[], None] = lambda: None,
) -> MergeResult:
    """Append staged episodes to the dataset at ``root``, creating it if it has no ``info.json``.

    Episode indices continue after the existing episodes; ``index`` is global and contiguous;
    each camera's staged videos are remuxed into the dataset's mp4s (an episode's single staged
    mp4 that fills a file alone, and has its index first, becomes that file as it is). When
    appending, the existing dataset's ``chunks_size`` and file sizes are kept and new files are
    started.

    Args:
        root: Dataset directory.
        staged: Finished staged episodes, in the order they get their indices.
        fmt: ``lerobot-v3`` (v3.0) or ``lerobot-v2.1``.
        robot_type: ``robot_type`` of ``info.json`` (an existing dataset keeps its own when None).
        fps: Frame rate of the dataset; every staged episode must have it.
        data_file_mb: v3 data file size at which a new file starts.
        video_file_mb: v3 video file size at which a new file starts.
        chunks_size: Files (v3) or episodes (v2.1) per chunk directory (default
            :data:`DEFAULT_CHUNKS_SIZE`); an existing dataset keeps its own, and naming another
            one for it is an error.
        check: Called before every step that writes (orphan removal, each data and video file,
            episodes metadata, stats, ``info.json``); raises to stop the merge, e.g. when the writer's
            lock was lost.

    Returns:
        The new indices, totals and files written.

    Raises:
        DatasetError: Nothing to merge, staged episodes that disagree with each other or with the
            existing dataset (format, fps, features, robot type), or a write or check failed.
    """
    root = Path(root)
    if not staged:
        raise DatasetError("nothing to merge: no staged episodes", path=str(root))
    features = _declared_features(staged, fps)
    _check_depth_format(fmt, features, root)
    existing = _load_existing(root)
    if existing.info is not None:
        _check_compatible(existing.info, fmt, fps, features, robot_type, root)
        robot_type = robot_type if robot_type is not None else existing.info.get("robot_type")
        kept = int(existing.info.get("chunks_size", DEFAULT_CHUNKS_SIZE))
        if chunks_size is not None and chunks_size != kept:
            raise DatasetError(
                f"the dataset has {kept} per chunk (chunks_size); it cannot be appended to with "
                f"{chunks_size} per chunk (leave the episodes per chunk unset to keep its own)",
                path=str(root),
            )
        chunks_size = kept
        data_file_mb = int(existing.info.get("data_files_size_in_mb", data_file_mb))
        video_file_mb = int(existing.info.get("video_files_size_in_mb", video_file_mb))
    layout = layout_for(fmt, root, chunks_size or DEFAULT_CHUNKS_SIZE)
    video_keys = [f.name for f in features if f.is_video]
    check()
    if existing.info is not None:
        _check_templates(existing.info, layout, root)
    remove_orphans(root, layout.referenced(existing.episodes, video_keys))

    tasks = list(existing.tasks)
    plans = _plan(layout, staged, existing, tasks, data_file_mb)
    for key in video_keys:
        place_videos(plans, key, layout.placer(f"videos/{key}", existing.episodes, video_file_mb), fps)
    files = _write_data(layout, plans, [f for f in features if not f.is_video], check)
    files += _write_videos(layout, plans, video_keys, fps, check)
    check()
    layout.write_episodes(existing.episodes, plans, features, tasks)
    old_stats = episode_stats(existing.episodes)
    check()
    atomic_write_json(root / STATS, aggregate([*old_stats, *(p.stats for p in plans)]))

    total_episodes = existing.total_episodes + len(plans)
    info = {
        "codebase_version": layout.codebase_version,
        "robot_type": robot_type,
        "total_episodes": total_episodes,
        "total_frames": plans[-1].to_index,
        "total_tasks": len(tasks),
        **layout.size_fields(
            total_episodes=total_episodes,
            cameras=len(video_keys),
            data_mb=data_file_mb,
            video_mb=video_file_mb,
        ),
        "fps": fps,
        "splits": {"train": f"0:{total_episodes}"},
        "data_path": layout.data_path,
        "video_path": layout.video_path if video_keys else None,
        "features": existing.info["features"] if existing.info else {f.name: f.to_info() for f in features},
    }
    meta = [p for p in (root / "meta").rglob("*") if p.is_file() and p != root / INFO]
    make_durable(root, [*files, *meta])
    check()
    atomic_write_json(root / INFO, info)
    return MergeResult(
        root=root,
        fmt=fmt,
        episode_indices=tuple(p.episode_index for p in plans),
        total_episodes=total_episodes,
        total_frames=plans[-1].to_index,
        files=tuple(files),
    )


def _declared_features(staged: Sequence[StagedEpisode], fps: int) -> list[FeatureSpec]:
    """Numeric features, cameras and the default columns, the same for every staged episode."""
    first = staged[0]
    for episode in staged:
        if episode.fps != fps:
            raise DatasetError(f"staged at {episode.fps} fps, the dataset has {fps}", path=str(episode.dir))
        if _signature(episode) != _signature(first):
            raise DatasetError(
                f"features or cameras differ from the first staged episode ({first.dir})",
                path=str(episode.dir),
            )
    cameras = [
        camera_feature(
            key,
            width=v.width,
            height=v.height,
            codec=v.codec,
            pix_fmt=v.pix_fmt,
            fps=fps,
            depth=None if v.depth_unit is None or v.depth is None else (v.depth_unit, v.depth),
        )
        for key, v in first.videos.items()
    ]
    return [*first.features, *cameras, *DEFAULT_FEATURES]


def _signature(episode: StagedEpisode) -> tuple[Any, ...]:
    videos = [
        (k, v.width, v.height, v.codec, v.pix_fmt, v.depth_unit, v.depth) for k, v in episode.videos.items()
    ]
    return (episode.features, videos)


def _check_depth_format(fmt: DatasetFormat, features: Sequence[FeatureSpec], root: Path) -> None:
    depth = [f.name for f in features if (f.info or {}).get("is_depth_map")]
    if depth and LAYOUTS[fmt].codebase_version != "v3.0":
        raise DatasetError(
            f"{', '.join(depth)}: depth cameras need the v3.0 format (lerobot >= 0.6 reads them); "
            f"{LAYOUTS[fmt].codebase_version} has no depth format and an 8-bit video would lose the depth. "
            "Write lerobot-v3, or remove the depth mappings",
            path=str(root),
        )


def _load_existing(root: Path) -> _Existing:
    if not (root / INFO).is_file():
        return _Existing()
    info = read_info(root)
    total = int(info["total_episodes"])  # rows of an interrupted merge are not part of the dataset
    episodes = [row for row in read_episodes(root, info) if int(row["episode_index"]) < total]
    tasks = read_tasks(root, info)[: int(info["total_tasks"])]
    return _Existing(info=info, episodes=episodes, tasks=tasks)


def _check_compatible(
    info: dict[str, Any],
    fmt: DatasetFormat,
    fps: int,
    features: Sequence[FeatureSpec],
    robot_type: str | None,
    root: Path,
) -> None:
    version = LAYOUTS[fmt].codebase_version
    problems = []
    if info.get("codebase_version") != version:
        problems.append(f"format {info.get('codebase_version')} is not {version}")
    if info.get("fps") != fps:
        problems.append(f"fps {info.get('fps')} is not {fps}")
    if robot_type is not None and info.get("robot_type") not in (None, robot_type):
        problems.append(f"robot_type {info.get('robot_type')!r} is not {robot_type!r}")
    theirs = {name: _comparable(entry) for name, entry in info.get("features", {}).items()}
    ours = {f.name: _comparable(f.to_info()) for f in features}
    if theirs != ours:
        differ = sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k))
        problems.append(f"features differ: {', '.join(differ)}")
    if problems:
        raise DatasetError(f"cannot append to the existing dataset: {'; '.join(problems)}", path=str(root))


def _check_templates(info: dict[str, Any], layout: Layout, root: Path) -> None:
    """Refuse a dataset whose file path templates are not this writer's (see the module docstring)."""
    problems = []
    if info.get("data_path") != layout.data_path:
        problems.append(f"its data_path is {info.get('data_path')!r}, this writer's is {layout.data_path!r}")
    if info.get("video_path") not in (None, layout.video_path):  # None: a dataset without cameras
        problems.append(
            f"its video_path is {info.get('video_path')!r}, this writer's is {layout.video_path!r}"
        )
    if problems:
        raise DatasetError(
            f"cannot append to the existing dataset: {'; '.join(problems)} (its files would not be "
            "found, and would be deleted as leftovers); write to a new dataset",
            path=str(root),
        )


def _comparable(entry: dict[str, Any]) -> tuple[Any, ...]:
    video = entry.get("info") or {}
    depth = tuple(video.get(k) for k in _DEPTH_KEYS) if video.get("is_depth_map") else None
    return (
        entry.get("dtype"),
        list(entry.get("shape", [])),
        entry.get("names"),
        video.get("video.codec"),
        video.get("video.pix_fmt"),
        depth,
    )


_DEPTH_KEYS = ("depth_unit", "video.depth_min", "video.depth_max", "video.shift", "video.use_log")
"""What must agree for a depth camera's episodes to be read with one set of parameters."""


def _plan(
    layout: Layout, staged: Sequence[StagedEpisode], existing: _Existing, tasks: list[str], data_file_mb: int
) -> list[EpisodePlan]:
    """Indices, task indices, data files and stats of the new episodes (appends new tasks)."""
    task_index = {task: i for i, task in enumerate(tasks)}
    placer = layout.placer("data", existing.episodes, data_file_mb)
    plans: list[EpisodePlan] = []
    from_index = existing.total_frames
    for episode_index, episode in enumerate(staged, start=existing.total_episodes):
        if episode.task not in task_index:
            task_index[episode.task] = len(tasks)
            tasks.append(episode.task)
        plan = EpisodePlan(
            staged=episode,
            episode_index=episode_index,
            task_index=task_index[episode.task],
            from_index=from_index,
            data=placer.place(episode_index, sum(path.stat().st_size for path in episode.data_paths)),
        )
        plan.stats = {
            **episode.stats,
            "episode_index": _constant_stats(episode_index, episode.length),
            "index": _shifted_stats(episode.stats["frame_index"], from_index),
            "task_index": _constant_stats(plan.task_index, episode.length),
        }
        plans.append(plan)
        from_index = plan.to_index
    return plans


def _constant_stats(value: int, count: int) -> FeatureStats:
    stats: FeatureStats = {
        "min": [value],
        "max": [value],
        "mean": [float(value)],
        "std": [0.0],
        "count": [count],
    }
    return stats | {q: [float(value)] for q in QUANTILES}


def _shifted_stats(stats: FeatureStats, offset: int) -> FeatureStats:
    """Stats of ``values + offset`` from those of ``values``."""
    return {
        name: values if name in ("std", "count") else [v + offset for v in values]
        for name, values in stats.items()
    }


def _write_data(
    layout: Layout, plans: Sequence[EpisodePlan], columns: Sequence[FeatureSpec], check: Callable[[], None]
) -> list[Path]:
    """Data files: the staged rows plus episode_index/index/task_index, a staged row group at a time."""
    schema = arrow_schema(columns)
    written = []
    for pos, members in group_by_file([p.data for p in plans]).items():
        check()
        path = layout.data_file(pos)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with pq.ParquetWriter(path, schema) as writer:
                for i in members:
                    _write_episode_rows(writer, plans[i], schema)
        except (OSError, pa.ArrowException) as err:
            raise DatasetError(f"cannot write data: {err}", path=str(path)) from err
        written.append(path)
    return written


def _write_episode_rows(writer: pq.ParquetWriter, plan: EpisodePlan, schema: pa.Schema) -> None:
    """An episode's rows, written as they were staged: one row group per staged one (at most
    ``[flushing] max_frames_per_chunk`` rows; an episode under that is one row group, as lerobot's
    recorder writes). Memory stays bounded by the staging's flush size, whatever the episode's
    length: written as one row group, a 10-minute episode's rows took the writer ~0.7 KB each."""
    index = plan.from_index
    for path, length in zip(plan.staged.data_paths, plan.staged.part_lengths, strict=True):
        with pq.ParquetFile(path) as part:
            if part.metadata.num_rows != length:
                raise DatasetError(
                    f"staged data has {part.metadata.num_rows} rows, expected {length}", path=str(path)
                )
            for group in range(part.num_row_groups):
                staged = part.read_row_group(group)
                n = staged.num_rows
                assigned = {
                    "episode_index": from_numpy(np.full(n, plan.episode_index, dtype=np.int64), pa.int64()),
                    "index": from_numpy(np.arange(index, index + n, dtype=np.int64), pa.int64()),
                    "task_index": from_numpy(np.full(n, plan.task_index, dtype=np.int64), pa.int64()),
                }
                arrays = [
                    assigned[name] if name in assigned else staged.column(name) for name in schema.names
                ]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=n)
                index += n


def _write_videos(
    layout: Layout, plans: Sequence[EpisodePlan], keys: Sequence[str], fps: int, check: Callable[[], None]
) -> list[Path]:
    """Each camera's dataset files: a staged mp4 that is a whole file as it is (see
    :func:`_placed_as_is`) becomes the file, all others are remuxed (all parts of each episode) and
    the result probed: every part must start at its frame's pts in the joined file (episodes at
    ``from_timestamp``).
    """
    written = []
    for key in keys:
        for pos, members in group_by_file([p.videos[key].pos for p in plans]).items():
            check()
            path = layout.video_file(key, pos)
            path.parent.mkdir(parents=True, exist_ok=True)
            if not (len(members) == 1 and _placed_as_is(plans[members[0]], key, path)):
                _remux(plans, members, key, path, fps)
            written.append(path)
    return written


def _placed_as_is(plan: EpisodePlan, key: str, path: Path) -> bool:
    """Place an episode's staged mp4 of camera ``key`` as the file ``path`` it fills alone, without
    remuxing it, when it is what the remux would write: one part starting the file, the size it
    had when staging counted its frames (the episode's length, first pts 0), and its index first
    (faststart). Hard-linked (a retried merge still finds the stage whole), copied where the
    stage is on another file system; under a temporary name, then renamed, so that ``path`` is
    never a partial file nor a name of the staged file that something writes through. Whether it
    was placed; if not, nothing was written.
    """
    video, staged = plan.staged.videos[key], plan.staged
    if len(video.files) != 1 or video.frames != staged.length or plan.videos[key].from_timestamp != 0:
        return False
    source = staged.video_paths(key)[0]
    temp = path.with_name(f".{path.name}{TMP_SUFFIX}")
    try:
        if video.sizes != (source.stat().st_size,) or not is_faststart(source):
            return False
        temp.unlink(missing_ok=True)
        try:
            os.link(source, temp)
        except OSError:  # another file system, or one without hard links
            shutil.copyfile(source, temp)
        os.replace(temp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        raise DatasetError(f"cannot write video {key}: {err.strerror or err}", path=str(path)) from err
    return True


def _remux(plans: Sequence[EpisodePlan], members: list[int], key: str, path: Path, fps: int) -> None:
    """Remux the staged mp4s of camera ``key`` of the episodes ``members`` into ``path``; check it."""
    try:
        concat_videos([p for i in members for p in plans[i].staged.video_paths(key)], path)
        probe = probe_video(path)
    except MediaError as err:
        raise DatasetError(f"cannot write video {key}: {err.reason}", path=str(path)) from err
    expected = sum(plans[i].staged.length for i in members)
    if probe.frames != expected:
        raise DatasetError(f"video has {probe.frames} frames, expected {expected}", path=str(path))
    for i in members:
        first = round(plans[i].videos[key].from_timestamp * fps)
        starts = np.cumsum([first, *plans[i].staged.part_lengths[:-1]])
        for part, frame in enumerate(starts.tolist()):
            pts, expected_pts = probe.pts_s[frame], frame / fps
            if abs(pts - expected_pts) > _PTS_TOLERANCE_S:
                raise DatasetError(
                    f"episode {plans[i].episode_index} part {part} starts at pts {pts}, "
                    f"expected {expected_pts}",
                    path=str(path),
                )
