"""Staging synthetic episodes and merging them into v3.0 / v2.1 datasets, read back and checked."""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import msgspec
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests._media import write_index_last

from roboflow_core.config import VideoConfig
from roboflow_core.errors import DatasetError
from roboflow_dataset.lerobot import (
    DatasetFormat,
    EpisodeStager,
    FeatureSpec,
    StagedEpisode,
    merge_into_dataset,
    read_dataset,
)
from roboflow_dataset.lerobot._arrow import from_values
from roboflow_dataset.stats import STAT_NAMES
from roboflow_media import is_faststart, probe_video

FPS = 10
WIDTH, HEIGHT = 64, 48
BARS = 8
VIDEO = VideoConfig(codec="libx264")
FEATURES = (
    FeatureSpec(name="observation.state", dtype="float32", shape=(3,), names=("a", "b", "c")),
    FeatureSpec(name="action", dtype="float32", shape=(2,), names=("x", "y")),
    FeatureSpec(name="gripper", dtype="float32", shape=(1,)),
)
CAMERAS = ("observation.images.front", "observation.images.wrist")
DEFAULTS = ["timestamp", "frame_index", "episode_index", "index", "task_index"]


def code_of(episode: int, frame: int, camera: int) -> int:
    """The number a synthetic frame shows: unique per (episode, frame, camera), below 2**BARS."""
    return int((episode * 40 + frame * 2 + camera) % 2**BARS)


def make_frame(code: int) -> np.ndarray:
    """``BARS`` vertical bars, white for a 1 bit of ``code`` (robust to lossy compression)."""
    bits = (code >> np.arange(BARS)) & 1
    row = np.repeat(bits * 255, WIDTH // BARS).astype(np.uint8)
    return np.repeat(np.broadcast_to(row, (HEIGHT, WIDTH))[..., None], 3, axis=2).copy()


def read_code(frame: np.ndarray) -> int:
    """Decode :func:`make_frame`'s number from the centre of each bar."""
    step = WIDTH // BARS
    levels = frame[HEIGHT // 4 : -HEIGHT // 4, step // 2 :: step, 0].mean(axis=0)
    return int(sum(1 << i for i, level in enumerate(levels) if level > 128))


def numeric(episode: int, frame: int) -> dict[str, npt.ArrayLike]:
    return {
        "observation.state": np.array([episode, frame, episode * 1000 + frame], dtype=np.float32),
        "action": np.array([frame * 0.5, -frame], dtype=np.float32),
        "gripper": np.float32(frame % 2),
    }


def stage(
    directory: Path,
    episode: int,
    length: int,
    *,
    task: str = "pick",
    cameras: Sequence[str] = CAMERAS,
    fps: int = FPS,
    flush_rows: int = 4,
) -> StagedEpisode:
    stager = EpisodeStager(
        directory / f"ep{episode}",
        fps=fps,
        features=FEATURES,
        cameras=cameras,
        video=VIDEO,
        task=task,
        source=f"synthetic-{episode}",
        flush_rows=flush_rows,
    )
    with stager:
        for frame in range(length):
            images = {cam: make_frame(code_of(episode, frame, i)) for i, cam in enumerate(cameras)}
            stager.add_frame(numeric(episode, frame), images)
        return stager.finish()


def decoded_by_pts(path: Path) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as container:
        return [(float(f.time), f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]


def frame_at(frames: list[tuple[float, np.ndarray]], query: float) -> np.ndarray:
    """The decoded frame LeRobot would return for ``query`` (within its 1e-4 s tolerance)."""
    pts, image = min(frames, key=lambda item: abs(item[0] - query))
    assert abs(pts - query) < 1e-4, f"no frame at {query}: closest {pts}"
    return image


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> list[StagedEpisode]:
    """Three episodes (lengths 5, 9, 3; tasks pick, place, pick), staged once for the module."""
    directory = tmp_path_factory.mktemp("staged")
    return [stage(directory, 0, 5), stage(directory, 1, 9, task="place"), stage(directory, 2, 3)]


@pytest.fixture(scope="module")
def v3_dataset(tmp_path_factory: pytest.TempPathFactory, staged: list[StagedEpisode]) -> Path:
    root = tmp_path_factory.mktemp("v3") / "dataset"
    merge_into_dataset(root, staged, robot_type="synthetic", fps=FPS)
    return root


def check_videos_identify_frames(root: Path, episode_codes: dict[int, int]) -> None:
    """Every row's camera frames, decoded at from_timestamp + timestamp, show the right source frame."""
    contents = read_dataset(root)
    episodes = contents.episodes.set_index("episode_index")
    for cam_number, camera in enumerate(CAMERAS):
        cache: dict[Path, list[tuple[float, np.ndarray]]] = {}
        for row in contents.data.itertuples(index=False):
            meta = episodes.loc[row.episode_index]
            path = root / contents.info["video_path"].format(
                video_key=camera,
                chunk_index=meta[f"videos/{camera}/chunk_index"],
                file_index=meta[f"videos/{camera}/file_index"],
            )
            frames = cache.setdefault(path, decoded_by_pts(path))
            image = frame_at(frames, meta[f"videos/{camera}/from_timestamp"] + float(row.timestamp))
            source = episode_codes[row.episode_index]
            assert read_code(image) == code_of(source, row.frame_index, cam_number)


def test_staged_episode_files(staged: list[StagedEpisode]) -> None:
    episode = StagedEpisode.load(staged[1].dir)
    assert episode == staged[1]
    assert episode.length == 9 and set(episode.videos) == set(CAMERAS)
    data = pq.read_table(episode.data_path)
    assert data.column_names == ["timestamp", "frame_index", "observation.state", "action", "gripper"]
    assert pq.ParquetFile(episode.data_path).num_row_groups == 3  # flush_rows=4
    assert episode.stats["observation.state"]["count"] == [9]
    assert np.asarray(episode.stats[CAMERAS[0]]["mean"]).shape == (3, 1, 1)
    assert episode.videos[CAMERAS[0]].codec == "h264"


def test_v3_info_and_data(v3_dataset: Path) -> None:
    contents = read_dataset(v3_dataset)
    info = contents.info
    assert list(info) == [
        "codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks", "chunks_size",
        "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits", "data_path", "video_path",
        "features",
    ]  # fmt: skip
    assert (info["codebase_version"], info["total_episodes"], info["total_frames"]) == ("v3.0", 3, 17)
    assert (info["total_tasks"], info["fps"], info["splits"]) == (2, FPS, {"train": "0:3"})
    assert list(info["features"]) == [f.name for f in FEATURES] + list(CAMERAS) + DEFAULTS
    camera = info["features"][CAMERAS[0]]
    assert camera["shape"] == [HEIGHT, WIDTH, 3] and camera["names"] == ["height", "width", "channels"]
    assert camera["info"]["video.codec"] == "h264" and camera["info"]["video.fps"] == FPS

    data_file = v3_dataset / "data/chunk-000/file-000.parquet"
    schema = pq.read_schema(data_file)
    assert schema.names == [f.name for f in FEATURES] + DEFAULTS
    assert schema.field("observation.state").type == pa.list_(pa.float32(), 3)
    assert schema.field("gripper").type == pa.float32() and schema.field("timestamp").type == pa.float32()
    assert "observation.state" in json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    # the staged row groups (flush_rows=4), each within one episode: memory bounded by the flush size
    parquet = pq.ParquetFile(data_file)
    groups = [
        parquet.read_row_group(g, columns=["episode_index"]).column(0).to_pylist()
        for g in range(parquet.num_row_groups)
    ]
    assert all(len(set(g)) == 1 and len(g) <= 4 for g in groups)
    assert [e for g in groups for e in g] == sorted(e for g in groups for e in g)
    assert len({g[0] for g in groups}) == 3

    data = contents.data
    assert data["index"].tolist() == list(range(17))
    assert data["episode_index"].tolist() == [0] * 5 + [1] * 9 + [2] * 3
    assert data["task_index"].tolist() == [0] * 5 + [1] * 9 + [0] * 3
    expected_ts = (data["frame_index"].to_numpy() / FPS).astype(np.float32)
    np.testing.assert_array_equal(data["timestamp"].to_numpy(), expected_ts)
    assert contents.tasks == ["pick", "place"]
    # lerobot reads the tasks with pandas: the strings are the index, named "task"
    tasks = pd.read_parquet(v3_dataset / "meta/tasks.parquet")
    expected = pd.DataFrame({"task_index": [0, 1]}, index=pd.Index(["pick", "place"], name="task"))
    pd.testing.assert_frame_equal(tasks, expected)
    assert tasks["task_index"].dtype == np.int64 and tasks.loc["place", "task_index"] == 1


def test_v3_episodes_metadata_and_stats(v3_dataset: Path) -> None:
    contents = read_dataset(v3_dataset)
    episodes = contents.episodes
    video_columns = [f"videos/{c}/{k}" for c in CAMERAS
                     for k in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]  # fmt: skip
    stats_features = [f.name for f in FEATURES] + list(CAMERAS) + DEFAULTS
    assert list(episodes.columns) == [
        "episode_index", "tasks", "length", "data/chunk_index", "data/file_index",
        "dataset_from_index", "dataset_to_index", *video_columns,
        *(f"stats/{f}/{s}" for f in stats_features for s in STAT_NAMES),
        "meta/episodes/chunk_index", "meta/episodes/file_index",
    ]  # fmt: skip
    assert episodes["dataset_from_index"].tolist() == [0, 5, 14]
    assert episodes["dataset_to_index"].tolist() == [5, 14, 17]
    assert episodes[f"videos/{CAMERAS[1]}/from_timestamp"].tolist() == [0.0, 0.5, 1.4]
    assert episodes[f"videos/{CAMERAS[1]}/to_timestamp"].tolist() == [0.5, 1.4, 1.7]
    assert [list(t) for t in episodes["tasks"]] == [["pick"], ["place"], ["pick"]]
    assert episodes["stats/index/min"].tolist() == [[0], [5], [14]]
    assert episodes["stats/episode_index/max"].tolist() == [[0], [1], [2]]

    stats = contents.stats
    assert set(stats) == set(stats_features)
    assert stats["index"]["max"] == [16] and stats["index"]["count"] == [17]
    assert stats["observation.state"]["max"] == [2.0, 8.0, 2002.0]
    assert np.asarray(stats[CAMERAS[0]]["q99"]).shape == (3, 1, 1)
    for camera in CAMERAS:
        assert 0.0 <= np.min(stats[camera]["min"]) <= np.max(stats[camera]["max"]) <= 1.0


def test_v3_video_frames_match_rows(v3_dataset: Path) -> None:
    for camera in CAMERAS:
        frames = decoded_by_pts(v3_dataset / f"videos/{camera}/chunk-000/file-000.mp4")
        assert len(frames) == 17
    check_videos_identify_frames(v3_dataset, {0: 0, 1: 1, 2: 2})


def test_append_continues_indices_and_starts_new_files(tmp_path: Path, staged: list[StagedEpisode]) -> None:
    root = tmp_path / "dataset"
    merge_into_dataset(root, staged[:2], robot_type="synthetic", fps=FPS)
    first_data = (root / "data/chunk-000/file-000.parquet").read_bytes()
    result = merge_into_dataset(root, staged[2:], robot_type=None, fps=FPS)

    assert result.episode_indices == (2,) and (result.total_episodes, result.total_frames) == (3, 17)
    assert (root / "data/chunk-000/file-000.parquet").read_bytes() == first_data
    assert (root / "data/chunk-000/file-001.parquet").is_file()
    assert (root / "meta/episodes/chunk-000/file-001.parquet").is_file()
    contents = read_dataset(root)
    assert contents.info["robot_type"] == "synthetic"
    assert contents.episodes["episode_index"].tolist() == [0, 1, 2]
    assert contents.episodes[f"videos/{CAMERAS[0]}/file_index"].tolist() == [0, 0, 1]
    assert contents.episodes[f"videos/{CAMERAS[0]}/from_timestamp"].tolist() == [0.0, 0.5, 0.0]
    assert contents.data["index"].tolist() == list(range(17))
    assert contents.stats["observation.state"]["count"] == [17]
    assert contents.stats["episode_index"]["max"] == [2]
    assert contents.stats == read_dataset_stats(staged, tmp_path)
    check_videos_identify_frames(root, {0: 0, 1: 1, 2: 2})


def read_dataset_stats(staged: list[StagedEpisode], tmp_path: Path) -> dict[str, Any]:
    """stats.json of the same episodes merged in one go."""
    root = tmp_path / "at-once"
    merge_into_dataset(root, staged, robot_type="synthetic", fps=FPS)
    return read_dataset(root).stats


def test_roll_over_by_size_and_chunks(tmp_path: Path, staged: list[StagedEpisode]) -> None:
    root = tmp_path / "dataset"
    merge_into_dataset(root, staged, robot_type=None, fps=FPS, data_file_mb=0, video_file_mb=0, chunks_size=2)
    episodes = read_dataset(root).episodes
    assert list(zip(episodes["data/chunk_index"], episodes["data/file_index"], strict=True)) == [
        (0, 0), (0, 1), (1, 0),
    ]  # fmt: skip
    assert episodes[f"videos/{CAMERAS[0]}/from_timestamp"].tolist() == [0.0, 0.0, 0.0]
    assert (root / f"videos/{CAMERAS[0]}/chunk-001/file-000.mp4").is_file()
    check_videos_identify_frames(root, {0: 0, 1: 1, 2: 2})


def test_append_rejects_incompatible_dataset(tmp_path: Path, staged: list[StagedEpisode]) -> None:
    root = tmp_path / "dataset"
    merge_into_dataset(root, staged[:1], robot_type="synthetic", fps=FPS)
    single_camera = stage(tmp_path, 7, 2, cameras=CAMERAS[:1])
    with pytest.raises(DatasetError, match=f"features differ: {CAMERAS[1]}"):
        merge_into_dataset(root, [single_camera], robot_type=None, fps=FPS)
    with pytest.raises(DatasetError, match="fps 10 is not 20"):
        merge_into_dataset(root, [stage(tmp_path, 8, 2, fps=20)], robot_type=None, fps=20)
    with pytest.raises(DatasetError, match=r"format v3\.0 is not v2\.1"):
        merge_into_dataset(root, staged[1:2], fmt="lerobot-v2.1", robot_type=None, fps=FPS)
    with pytest.raises(DatasetError, match="differ from the first staged episode"):
        merge_into_dataset(tmp_path / "other", [staged[0], single_camera], robot_type=None, fps=FPS)
    assert read_dataset(root).info["total_episodes"] == 1


@pytest.mark.parametrize("template", ["data_path", "video_path"])
def test_append_refuses_other_path_templates_and_deletes_nothing(
    tmp_path: Path, staged: list[StagedEpisode], template: str
) -> None:
    root = tmp_path / "dataset"
    merge_into_dataset(root, staged[:1], robot_type="synthetic", fps=FPS)
    info_path = root / "meta/info.json"
    info = json.loads(info_path.read_text())
    theirs = info[template].replace("file-{file_index:03d}", "episode_{episode_index:06d}")
    assert theirs != info[template]
    info[template] = theirs
    info_path.write_text(json.dumps(info))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(
        DatasetError, match=f"its {template} is '.*episode_index.*', this writer's is"
    ) as caught:
        merge_into_dataset(root, staged[1:2], robot_type=None, fps=FPS)
    assert caught.value.path == str(root)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # no file was removed or added
    assert json.loads(info_path.read_text())[template] == theirs


def test_every_file_and_directory_is_flushed_before_info_json(
    tmp_path: Path, staged: list[StagedEpisode], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "dataset"
    merge_into_dataset(root, staged[:1], robot_type=None, fps=FPS)
    events: list[tuple[str, Path]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        events.append(("replace", Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    merge_into_dataset(root, staged[1:], robot_type=None, fps=FPS)
    info = events.index(("replace", root / "meta/info.json"))
    flushed_before = {path for kind, path in events[:info] if kind == "fsync"}
    written = {p for p in root.rglob("*") if p.is_file() and p.name != "info.json"}
    new = {p for p in written if "file-001" in p.name}
    assert new, "the append wrote new data and video files"
    assert new <= flushed_before
    directories = {d for p in written for d in p.parents if root in d.parents or d == root}
    assert directories <= flushed_before, sorted(directories - flushed_before)
    assert ("fsync", root / "meta") in events[info:], "the rename of info.json is flushed too"


def test_interrupted_merge_leaves_old_dataset_and_is_cleaned_up(
    tmp_path: Path, staged: list[StagedEpisode], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "dataset"
    merge_into_dataset(root, staged[:1], robot_type=None, fps=FPS)
    info_before = (root / "meta/info.json").read_text()

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("roboflow_dataset.lerobot.layout.V3Layout.write_episodes", crash)
    with pytest.raises(OSError, match="disk full"):
        merge_into_dataset(root, staged[1:], robot_type=None, fps=FPS)
    assert (root / "meta/info.json").read_text() == info_before
    assert (root / "data/chunk-000/file-001.parquet").is_file()  # written, but described by nothing
    monkeypatch.undo()

    merge_into_dataset(root, staged[2:], robot_type=None, fps=FPS)
    contents = read_dataset(root)
    assert contents.info["total_episodes"] == 2 and len(contents.data) == 8
    assert contents.data["index"].tolist() == list(range(8))
    check_videos_identify_frames(root, {0: 0, 1: 2})


def new_stager(directory: Path, cameras: Sequence[str] = CAMERAS[:1]) -> EpisodeStager:
    return EpisodeStager(
        directory, fps=FPS, features=FEATURES, cameras=cameras, video=VIDEO, task="t", source="s"
    )


def test_incomplete_stage_is_rejected(tmp_path: Path) -> None:
    stager = new_stager(tmp_path / "ep")
    stager.add_frame(numeric(0, 0), {CAMERAS[0]: make_frame(1)})
    with pytest.raises(DatasetError, match=r"episode\.json is missing"):
        StagedEpisode.load(tmp_path / "ep")
    stager.abort()
    assert not (tmp_path / "ep").exists()


def test_abort_after_finish_keeps_the_stage(tmp_path: Path) -> None:
    stager = new_stager(tmp_path / "ep")
    stager.add_frame(numeric(0, 0), {CAMERAS[0]: make_frame(1)})
    finished = stager.finish()
    stager.abort()
    assert StagedEpisode.load(tmp_path / "ep") == finished
    with pytest.raises(DatasetError, match="already finished"):
        stager.add_frame(numeric(0, 1), {CAMERAS[0]: make_frame(1)})


def test_stager_rejects_bad_frames_and_cleans_up(tmp_path: Path) -> None:
    directory = tmp_path / "ep"
    with (
        pytest.raises(DatasetError, match=r"observation\.state has shape \(2,\)"),
        new_stager(directory) as stager,
    ):
        stager.add_frame({**numeric(0, 0), "observation.state": np.zeros(2)}, {CAMERAS[0]: make_frame(1)})
    assert not directory.exists()
    with (
        pytest.raises(DatasetError, match=re.escape(f"missing {list(CAMERAS[:1])}")),
        new_stager(directory) as stager,
    ):
        stager.add_frame(numeric(0, 0), {})
    signed = np.zeros((48, 64, 1), dtype=np.int16)  # 16SC1: neither colour nor depth
    with (
        pytest.raises(DatasetError, match=r"int16 images cannot be stored; .* 16UC1/mono16"),
        new_stager(directory) as stager,
    ):
        stager.add_frame(numeric(0, 0), {CAMERAS[0]: signed})
    with (
        pytest.raises(
            DatasetError, match=r"frame 1 is \(48, 64, 1\) uint16, the first was \(48, 64, 3\) uint8"
        ),
        new_stager(directory) as stager,
    ):
        stager.add_frame(numeric(0, 0), {CAMERAS[0]: make_frame(0)})
        stager.add_frame(numeric(1, 1), {CAMERAS[0]: np.zeros((48, 64, 1), dtype=np.uint16)})
    with pytest.raises(DatasetError, match="no frames"):
        new_stager(directory).finish()
    assert not directory.exists()
    (directory / "x").mkdir(parents=True)
    with pytest.raises(DatasetError, match="not empty"):
        new_stager(directory)


def test_v21_layout(tmp_path: Path, staged: list[StagedEpisode]) -> None:
    root = tmp_path / "dataset"
    merge_into_dataset(root, staged[:2], fmt="lerobot-v2.1", robot_type="synthetic", fps=FPS, chunks_size=2)
    merge_into_dataset(root, staged[2:], fmt="lerobot-v2.1", robot_type=None, fps=FPS, chunks_size=2)
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v2.1"
    assert (info["total_episodes"], info["total_frames"], info["total_videos"], info["total_chunks"]) == (
        3,
        17,
        6,
        2,
    )
    assert "data_files_size_in_mb" not in info and info["chunks_size"] == 2
    for episode, chunk in ((0, 0), (1, 0), (2, 1)):
        assert (root / f"data/chunk-{chunk:03d}/episode_{episode:06d}.parquet").is_file()
        for camera in CAMERAS:
            assert (root / f"videos/chunk-{chunk:03d}/{camera}/episode_{episode:06d}.mp4").is_file()
    lines = [json.loads(line) for line in (root / "meta/episodes.jsonl").read_text().splitlines()]
    assert lines == [
        {"episode_index": 0, "tasks": ["pick"], "length": 5},
        {"episode_index": 1, "tasks": ["place"], "length": 9},
        {"episode_index": 2, "tasks": ["pick"], "length": 3},
    ]
    tasks = [json.loads(line) for line in (root / "meta/tasks.jsonl").read_text().splitlines()]
    assert tasks == [{"task_index": 0, "task": "pick"}, {"task_index": 1, "task": "place"}]
    stats = [json.loads(line) for line in (root / "meta/episodes_stats.jsonl").read_text().splitlines()]
    assert [s["episode_index"] for s in stats] == [0, 1, 2]
    assert stats[2]["stats"]["index"]["min"] == [14]
    assert np.asarray(stats[0]["stats"][CAMERAS[0]]["mean"]).shape == (3, 1, 1)

    contents = read_dataset(root)
    assert contents.data["index"].tolist() == list(range(17))
    assert contents.stats["frame_index"]["count"] == [17]
    for episode in range(3):
        path = root / f"videos/chunk-{episode // 2:03d}/{CAMERAS[0]}/episode_{episode:06d}.mp4"
        frames = decoded_by_pts(path)
        assert [read_code(image) for _, image in frames] == [
            code_of(episode, i, 0) for i in range(staged[episode].length)
        ]
        assert frames[0][0] == 0.0


@pytest.mark.doctor
def test_lerobot_doctor_finds_no_failures(v3_dataset: Path) -> None:
    doctor = Path(sys.executable).parent / "lerobot-doctor"
    run = subprocess.run(
        [str(doctor), "check", str(v3_dataset), "--json"], capture_output=True, text=True, timeout=300
    )
    report = json.loads(run.stdout)
    messages = [
        (check["name"], m["severity"], m["message"]) for check in report["checks"] for m in check["messages"]
    ]
    assert report["summary"]["FAIL"] == 0 and report["overall_severity"] != "FAIL", messages
    # the synthetic episodes are a few frames long: the only warnings allowed are about that
    warnings = [m for m in messages if m[1] != "PASS"]
    assert all("short" in text or "flagged" in text for _, _, text in warnings), warnings


def test_dataset_without_cameras(tmp_path: Path) -> None:
    episodes = [stage(tmp_path, i, 4, cameras=()) for i in range(2)]
    root = tmp_path / "dataset"
    result = merge_into_dataset(root, episodes, robot_type=None, fps=FPS)
    contents = read_dataset(root)
    assert contents.info["video_path"] is None
    assert list(contents.info["features"]) == [f.name for f in FEATURES] + DEFAULTS
    assert not (root / "videos").exists()
    assert result.files == (root / "data/chunk-000/file-000.parquet",)
    assert contents.episodes["dataset_to_index"].tolist() == [4, 8]


def test_a_merge_redone_while_the_first_still_writes_adds_no_rows_twice(
    tmp_path: Path, staged: list[StagedEpisode]
) -> None:
    """A writer that lost the dataset (stopped past its lease) may still write its files while the
    writer that took over redoes the same episodes: the takeover removes orphans, then the first
    one writes everything but info.json, then the second writes its own files. Both must land on
    the same files, so the dataset never holds an episode's rows twice."""

    class Stopped(Exception):
        pass

    root = tmp_path / "ds"
    merge_into_dataset(root, staged[:1], robot_type="synthetic", fps=FPS)
    counted: list[int] = []  # the checks of one merge of these episodes, on a copy
    shutil.copytree(root, tmp_path / "copy")
    merge_into_dataset(
        tmp_path / "copy", staged[1:], robot_type=None, fps=FPS, check=lambda: counted.append(1)
    )
    first_checks: list[int] = []
    second_checks: list[int] = []

    def first() -> None:  # runs up to its last check, the one before info.json, and stops there
        first_checks.append(1)
        if len(first_checks) == len(counted):
            raise Stopped

    def second() -> None:  # right after removing orphans, the first writer runs
        second_checks.append(1)
        if len(second_checks) == 2:
            with pytest.raises(Stopped):
                merge_into_dataset(root, staged[1:], robot_type=None, fps=FPS, check=first)

    result = merge_into_dataset(root, staged[1:], robot_type=None, fps=FPS, check=second)
    assert len(first_checks) == len(counted), "the first writer ran up to its info.json"
    ds = read_dataset(root)
    assert ds.info["total_episodes"] == result.total_episodes == len(staged)
    assert len(ds.episodes) == len(staged), "episodes metadata rows written twice"
    assert ds.episodes["episode_index"].tolist() == list(range(len(staged)))
    assert len(ds.data) == ds.info["total_frames"]


MERGE_IN_A_FRESH_PROCESS = """
import pickle, sys
from roboflow_dataset.lerobot import merge_into_dataset
root, fmt, fps, staged = pickle.loads(sys.stdin.buffer.read())
merge_into_dataset(root, staged, fmt=fmt, robot_type="synthetic", fps=fps)
print(sorted(name for name in sys.modules if name.split(".")[0] == "pandas"))
"""


@pytest.mark.parametrize("fmt", ["lerobot-v3", "lerobot-v2.1"])
def test_merges_never_import_pandas(tmp_path: Path, staged: list[StagedEpisode], fmt: DatasetFormat) -> None:
    """A merge into a new dataset, and an append, each in a process of its own, import no pandas
    (~0.3 s a process); the dataset reads back as the same merges done in this process give it."""
    root = tmp_path / "dataset"
    for part in (staged[:2], staged[2:]):
        run = subprocess.run(
            [sys.executable, "-c", MERGE_IN_A_FRESH_PROCESS],
            input=pickle.dumps((root, fmt, FPS, part)),
            capture_output=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr.decode()
        assert run.stdout.decode().strip() == "[]", "pandas was imported"
    for part in (staged[:2], staged[2:]):
        merge_into_dataset(tmp_path / "here", part, fmt=fmt, robot_type="synthetic", fps=FPS)

    contents, expected = read_dataset(root), read_dataset(tmp_path / "here")
    assert contents.tasks == expected.tasks == ["pick", "place"]
    assert contents.episodes["episode_index"].tolist() == [0, 1, 2]
    assert contents.episodes["length"].tolist() == [5, 9, 3]
    assert contents.episodes.equals(expected.episodes)
    assert contents.data.equals(expected.data) and contents.stats == expected.stats


def test_append_to_tasks_and_episodes_written_by_pandas(tmp_path: Path, staged: list[StagedEpisode]) -> None:
    """A v3 dataset whose tasks.parquet pandas wrote (as lerobot does: large strings) and whose episodes
    have no meta/episodes/* columns: the tasks continue, and every old episodes file is kept."""
    root = tmp_path / "dataset"
    merge_into_dataset(root, staged[:2], robot_type="synthetic", fps=FPS)
    frame = pd.DataFrame({"task_index": [0, 1]}, index=pd.Index(["pick", "place"], name="task"))
    frame.to_parquet(root / "meta/tasks.parquet")
    old_episodes = root / "meta/episodes/chunk-000/file-000.parquet"
    pointers = ["meta/episodes/chunk_index", "meta/episodes/file_index"]
    pq.write_table(pq.read_table(old_episodes).drop_columns(pointers), old_episodes)

    third = stage(tmp_path / "third", 2, 4, task="wipe")
    merge_into_dataset(root, [staged[2], third], robot_type=None, fps=FPS)
    contents = read_dataset(root)
    assert contents.tasks == ["pick", "place", "wipe"]
    assert contents.episodes["episode_index"].tolist() == [0, 1, 2, 3]
    assert contents.data["task_index"].tolist() == [0] * 5 + [1] * 9 + [0] * 3 + [2] * 4
    assert sorted(p.name for p in (root / "meta/episodes/chunk-000").iterdir()) == [
        "file-000.parquet",
        "file-001.parquet",
    ]
    assert contents.stats["index"]["count"] == [21] and contents.stats["task_index"]["max"] == [2]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "bool"])
@pytest.mark.parametrize("shape", [(1,), (3,)])
def test_feature_columns_are_what_pa_array_builds(dtype: str, shape: tuple[int, ...]) -> None:
    """Columns built from numpy buffers (booleans packed in bits) hold what ``pa.array`` would."""
    values = np.random.default_rng(3).normal(size=(11, *shape)) * 5
    feature = FeatureSpec(name="f", dtype=dtype, shape=shape)
    column = feature.column(values)
    column.validate(full=True)
    typed = values.astype(dtype).reshape(11, -1)
    expected = pa.array(typed[:, 0] if shape == (1,) else list(typed), type=feature.arrow_type())
    assert column.equals(expected)


def test_metadata_columns_are_what_pa_array_builds() -> None:
    columns = [
        ([["pick"], [], ["place", "wipé"]], pa.list_(pa.string())),
        ([[[[0.5]], [[1.0]]], [[[2.0]], [[-3.25]]]], pa.list_(pa.list_(pa.list_(pa.float64())))),
        ([[1], [2, 3]], pa.list_(pa.int64())),
        (["", "a"], pa.string()),
        ([], pa.list_(pa.int64())),
    ]
    for values, kind in columns:
        built = from_values(values, kind)
        built.validate(full=True)
        assert built.equals(pa.array(values, type=kind)), kind


def test_an_episode_alone_in_a_new_file_is_its_staged_mp4(
    tmp_path: Path, staged: list[StagedEpisode]
) -> None:
    """A staged mp4 that fills a dataset file alone becomes that file (hard-linked, index first, the
    stage still whole for a merge redone); episodes sharing a file are remuxed into it."""
    alone, shared = tmp_path / "alone", tmp_path / "shared"
    merge_into_dataset(alone, staged, robot_type=None, fps=FPS, video_file_mb=0)  # a file per episode
    merge_into_dataset(shared, staged, robot_type=None, fps=FPS)
    for i, episode in enumerate(staged):
        assert StagedEpisode.load(episode.dir) == episode
        for camera in CAMERAS:
            placed = alone / f"videos/{camera}/chunk-000/file-{i:03d}.mp4"
            assert placed.samefile(episode.video_path(camera)) and is_faststart(placed)
            assert not (shared / f"videos/{camera}/chunk-000/file-000.mp4").samefile(
                episode.video_path(camera)
            )
    check_videos_identify_frames(alone, {0: 0, 1: 1, 2: 2})
    check_videos_identify_frames(shared, {0: 0, 1: 1, 2: 2})
    assert not list(alone.rglob("*.tmp"))
    v21 = tmp_path / "v2.1"  # every episode has files of its own
    merge_into_dataset(v21, staged, fmt="lerobot-v2.1", robot_type=None, fps=FPS)
    for i, episode in enumerate(staged):
        placed = v21 / f"videos/chunk-000/{CAMERAS[1]}/episode_{i:06d}.mp4"
        assert placed.samefile(episode.video_path(CAMERAS[1]))


def test_a_stage_on_another_file_system_is_copied(
    tmp_path: Path, staged: list[StagedEpisode], monkeypatch: pytest.MonkeyPatch
) -> None:
    def cross_device(source: object, target: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    root = tmp_path / "dataset"
    merge_into_dataset(root, staged[:1], robot_type=None, fps=FPS)
    for camera in CAMERAS:
        placed = root / f"videos/{camera}/chunk-000/file-000.mp4"
        source = staged[0].video_path(camera)
        assert not placed.samefile(source) and placed.read_bytes() == source.read_bytes()
    check_videos_identify_frames(root, {0: 0})
    assert not list(root.rglob("*.tmp"))


def test_a_merge_redone_after_one_interrupted_places_the_videos_again(
    tmp_path: Path, staged: list[StagedEpisode], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "dataset"

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("roboflow_dataset.lerobot.layout.V3Layout.write_episodes", crash)
    with pytest.raises(OSError, match="disk full"):
        merge_into_dataset(root, staged[1:2], robot_type=None, fps=FPS)
    placed = root / f"videos/{CAMERAS[0]}/chunk-000/file-000.mp4"
    assert placed.samefile(staged[1].video_path(CAMERAS[0])) and not (root / "meta/info.json").exists()
    monkeypatch.undo()
    merge_into_dataset(root, staged[1:2], robot_type=None, fps=FPS)
    assert placed.samefile(staged[1].video_path(CAMERAS[0]))
    assert StagedEpisode.load(staged[1].dir) == staged[1]
    assert not list(root.rglob("*.tmp"))
    check_videos_identify_frames(root, {0: 1})


def _with_video(episode: StagedEpisode, camera: str, **changes: Any) -> StagedEpisode:
    video = msgspec.structs.replace(episode.videos[camera], **changes)
    return msgspec.structs.replace(episode, videos={**episode.videos, camera: video})


def test_a_staged_mp4_is_remuxed_unless_it_is_the_file_whose_frames_were_counted(tmp_path: Path) -> None:
    """The staged mp4 is remuxed (and the result probed) when its index is last, its size is not
    the one staging recorded (or none was), or its frame count is not the episode's length."""
    camera = CAMERAS[0]
    episode = stage(tmp_path / "stage", 0, 6)
    source = episode.video_path(camera)
    index_last = tmp_path / "index-last.mp4"
    write_index_last(source, index_last)
    os.replace(index_last, source)
    cases = {
        "index-last": _with_video(episode, camera, sizes=(source.stat().st_size,)),
        "unknown-size": _with_video(episode, camera, sizes=()),
        "other-size": _with_video(episode, camera, sizes=(source.stat().st_size + 1,)),
        "frames": _with_video(episode, camera, frames=5, sizes=(source.stat().st_size,)),
    }
    for name, changed in cases.items():
        root = tmp_path / name
        merge_into_dataset(root, [changed], robot_type=None, fps=FPS)
        written = root / f"videos/{camera}/chunk-000/file-000.mp4"
        assert not written.samefile(source) and is_faststart(written), name
        assert probe_video(written).frames == 6
        check_videos_identify_frames(root, {0: 0})


def test_a_staged_mp4_cut_short_after_staging_fails_the_merge(tmp_path: Path) -> None:
    episode = stage(tmp_path / "stage", 0, 6)
    source = episode.video_path(CAMERAS[1])
    source.write_bytes(source.read_bytes()[:-300])
    root = tmp_path / "dataset"
    with pytest.raises(DatasetError, match=r"video has \d frames, expected 6") as caught:
        merge_into_dataset(root, [episode], robot_type=None, fps=FPS)  # its size said: remuxed, probed
    assert caught.value.path == str(root / f"videos/{CAMERAS[1]}/chunk-000/file-000.mp4")
    assert not (root / "meta/info.json").exists()
