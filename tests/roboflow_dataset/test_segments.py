"""Segmented staging: closed segments, abort keeping them, resume, and merging several parts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tests.roboflow_dataset.test_lerobot_writer import (
    CAMERAS,
    FEATURES,
    FPS,
    VIDEO,
    check_videos_identify_frames,
    code_of,
    decoded_by_pts,
    make_frame,
    numeric,
    read_code,
)

from roboflow_core.errors import DatasetError
from roboflow_dataset.lerobot import (
    ClosedSegment,
    EpisodeStager,
    StagedEpisode,
    closed_segments,
    merge_into_dataset,
    read_dataset,
)
from roboflow_dataset.stats import ImageStats, VectorStats

LENGTH = 11


def new_stager(
    directory: Path, segment_frames: int | None, on_segment: Callable[[ClosedSegment], None] | None = None
) -> EpisodeStager:
    return EpisodeStager(
        directory,
        fps=FPS,
        features=FEATURES,
        cameras=CAMERAS,
        video=VIDEO,
        task="pick",
        source="synthetic",
        flush_rows=2,
        segment_frames=segment_frames,
        fingerprint="fp",
        on_segment=on_segment,
    )


def add_frames(stager: EpisodeStager, frames: range, episode: int = 0) -> None:
    for frame in frames:
        images = {cam: make_frame(code_of(episode, frame, i)) for i, cam in enumerate(CAMERAS)}
        stager.add_frame(numeric(episode, frame), images)


def stage(directory: Path, segment_frames: int | None) -> StagedEpisode:
    with new_stager(directory, segment_frames) as stager:
        add_frames(stager, range(LENGTH))
        return stager.finish()


def merged(tmp_path: Path, name: str, episodes: list[StagedEpisode]) -> Path:
    root = tmp_path / name
    merge_into_dataset(root, episodes, robot_type="synthetic", fps=FPS)
    return root


def assert_same_dataset(a: Path, b: Path) -> None:
    first, second = read_dataset(a), read_dataset(b)
    assert first.data.equals(second.data)
    assert first.stats == second.stats
    assert first.episodes.drop(columns=[c for c in first.episodes if "/file_index" in c]).equals(
        second.episodes.drop(columns=[c for c in second.episodes if "/file_index" in c])
    )


def test_segments_stage_the_same_episode_as_one_part(tmp_path: Path) -> None:
    reported: list[ClosedSegment] = []
    with new_stager(tmp_path / "seg", 4, on_segment=reported.append) as stager:
        add_frames(stager, range(LENGTH))
        assert [s.end for s in reported] == [4, 8]
        segmented = stager.finish()
    whole = stage(tmp_path / "whole", None)

    assert [(s.index, s.start, s.end, s.frames) for s in reported] == [
        (0, 0, 4, 4),
        (1, 4, 8, 4),
        (2, 8, 11, 3),
    ]
    assert reported[2].manifest == "segments/000002.json"
    assert sorted(reported[2].files) == sorted(
        ["segments/000002/data.parquet", "segments/000002/state.npz"]
        + [f"segments/000002/{camera}.mp4" for camera in CAMERAS]
    )
    assert closed_segments(tmp_path / "seg") == tuple(reported)
    assert segmented.part_lengths == (4, 4, 3) and whole.part_lengths == (LENGTH,)
    assert segmented.data_files == tuple(f"segments/{i:06d}/data.parquet" for i in range(3))
    assert segmented.videos[CAMERAS[0]].frames == LENGTH
    assert segmented.stats == whole.stats  # segment_frames is a multiple of flush_rows: bit-identical
    for episode in (segmented, whole):  # what the merge compares before placing an mp4 as it is
        for camera in CAMERAS:
            assert episode.videos[camera].sizes == tuple(
                p.stat().st_size for p in episode.video_paths(camera)
            )
    assert StagedEpisode.load(segmented.dir) == segmented
    with pytest.raises(DatasetError, match="3 parts, not one"):
        _ = segmented.data_path

    root = merged(tmp_path, "ds-seg", [whole, segmented, whole])
    assert_same_dataset(root, merged(tmp_path, "ds-whole", [whole, whole, whole]))
    check_videos_identify_frames(root, {0: 0, 1: 0, 2: 0})
    episodes = read_dataset(root).episodes
    assert episodes[f"videos/{CAMERAS[0]}/from_timestamp"].tolist() == [0.0, 1.1, 2.2]
    assert episodes[f"videos/{CAMERAS[0]}/to_timestamp"].tolist() == [1.1, 2.2, 3.3]


def test_segments_merge_into_v21(tmp_path: Path) -> None:
    episode = stage(tmp_path / "seg", 4)
    one_segment = stage(tmp_path / "one", LENGTH)
    root = tmp_path / "v21"
    merge_into_dataset(root, [episode, one_segment], fmt="lerobot-v2.1", robot_type="synthetic", fps=FPS)
    assert read_dataset(root).data["index"].tolist() == list(range(2 * LENGTH))
    # an episode's parts are joined; an episode of one segment is its file as staged
    for index, staged in enumerate((episode, one_segment)):
        path = root / f"videos/chunk-000/{CAMERAS[1]}/episode_{index:06d}.mp4"
        assert path.samefile(staged.video_paths(CAMERAS[1])[-1]) == (index == 1)
        frames = decoded_by_pts(path)
        assert [pts for pts, _ in frames] == pytest.approx([i / FPS for i in range(LENGTH)], abs=1e-4)
        assert [read_code(image) for _, image in frames] == [code_of(0, i, 1) for i in range(LENGTH)]


def test_segment_not_a_multiple_of_flush_rows_changes_stats_only_in_the_last_bits(tmp_path: Path) -> None:
    with new_stager(tmp_path / "seg", 3) as stager:
        add_frames(stager, range(LENGTH))
        segmented = stager.finish()
    whole = stage(tmp_path / "whole", None)
    for feature, stats in whole.stats.items():
        for name, value in stats.items():
            np.testing.assert_allclose(segmented.stats[feature][name], value, rtol=1e-12, err_msg=feature)


def test_abort_keeps_closed_segments_and_resume_continues(tmp_path: Path) -> None:
    directory = tmp_path / "seg"
    reported: list[ClosedSegment] = []
    with (
        pytest.raises(RuntimeError, match="killed"),
        new_stager(directory, 4, on_segment=reported.append) as stager,
    ):
        add_frames(stager, range(6))
        raise RuntimeError("killed")
    assert [s.end for s in reported] == [4]
    assert sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()) == sorted(
        [*reported[0].files, reported[0].manifest]
    )

    resumed = EpisodeStager.resume(directory, fingerprint="fp", on_segment=reported.append)
    assert resumed.length == 4 and resumed.features == FEATURES and resumed.cameras == CAMERAS
    with resumed:
        add_frames(resumed, range(4, LENGTH))
        episode = resumed.finish()
    assert [s.end for s in reported] == [4, 8, 11]
    uninterrupted = stage(tmp_path / "uninterrupted", 4)
    assert episode.stats == uninterrupted.stats
    assert episode.part_lengths == uninterrupted.part_lengths
    root = merged(tmp_path, "resumed", [episode])
    assert_same_dataset(root, merged(tmp_path, "whole", [uninterrupted]))
    check_videos_identify_frames(root, {0: 0})


def test_resume_removes_what_no_closed_segment_lists(tmp_path: Path) -> None:
    directory = tmp_path / "seg"
    stager = new_stager(directory, 4)
    add_frames(stager, range(9))  # segments 0 and 1 closed; segment 2 open, its files unfinished
    (directory / "segments/000002/observation.images.front.mp4").write_bytes(b"partial")
    (directory / "segments/.000002.json.tmp").write_text("{")
    (directory / "stray.txt").write_text("junk")
    state_1 = directory / "segments/000001/state.npz"
    (directory / "segments/000003.json").write_text("{}")  # out of order: not a closed segment
    assert [s.index for s in closed_segments(directory)] == [0, 1]

    resumed = EpisodeStager.resume(directory, fingerprint="fp")  # (the first stager is "killed")
    files = {p.relative_to(directory).as_posix() for p in directory.rglob("*")}
    assert files == {
        "segments",
        "segments/000000.json",
        "segments/000001.json",
        "segments/000000",
        "segments/000001",
    } | {
        f"segments/00000{i}/{name}"
        for i in (0, 1)
        for name in ("data.parquet", "state.npz", *(f"{c}.mp4" for c in CAMERAS))
    }
    assert state_1.is_file() and resumed.length == 8
    add_frames(resumed, range(8, LENGTH))
    assert resumed.finish().stats == stage(tmp_path / "whole", None).stats


def test_a_truncated_segment_file_ends_the_closed_segments(tmp_path: Path) -> None:
    directory = tmp_path / "seg"
    stager = new_stager(directory, 4)
    add_frames(stager, range(9))
    mp4 = directory / f"segments/000001/{CAMERAS[0]}.mp4"
    mp4.write_bytes(mp4.read_bytes()[:100])
    assert [s.index for s in closed_segments(directory)] == [0]
    resumed = EpisodeStager.resume(directory, fingerprint="fp")
    assert resumed.length == 4 and not mp4.exists()
    resumed.abort()


def test_resume_refuses_another_stage_and_touches_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "seg"
    stager = new_stager(directory, 4)
    add_frames(stager, range(6))
    before = sorted(directory.rglob("*"))
    with pytest.raises(DatasetError, match="fingerprint 'fp', expected 'other'"):
        EpisodeStager.resume(directory, fingerprint="other")
    assert sorted(directory.rglob("*")) == before
    with pytest.raises(DatasetError, match="no closed segment"):
        EpisodeStager.resume(tmp_path / "missing", fingerprint="fp")
    finished = stage(tmp_path / "finished", 4)
    with pytest.raises(DatasetError, match="is finished"):
        EpisodeStager.resume(finished.dir, fingerprint="fp")


def test_unsegmented_abort_removes_everything_and_bad_segment_frames_are_refused(tmp_path: Path) -> None:
    stager = new_stager(tmp_path / "one", None)
    add_frames(stager, range(3))
    stager.abort()
    assert not (tmp_path / "one").exists()
    stager = new_stager(tmp_path / "seg", 4)
    add_frames(stager, range(3))  # no segment closed yet: nothing to keep
    stager.abort()
    assert not (tmp_path / "seg").exists()
    with pytest.raises(DatasetError, match="must be > 0"):
        new_stager(tmp_path / "bad", 0)


def test_format_1_manifests_still_load(tmp_path: Path) -> None:
    episode = stage(tmp_path / "ep", None)
    manifest = tmp_path / "ep/episode.json"
    raw = json.loads(manifest.read_text())
    for video in raw["videos"].values():
        video["file"] = video.pop("files")[0]
    for key in ("data_files", "part_lengths", "fingerprint"):
        del raw[key]
    raw["format_version"] = 1
    manifest.write_text(json.dumps(raw))
    assert StagedEpisode.load(episode.dir) == StagedEpisode(
        **{**{f: getattr(episode, f) for f in episode.__struct_fields__}, "fingerprint": ""}
    )
    raw["format_version"] = 9
    manifest.write_text(json.dumps(raw))
    with pytest.raises(DatasetError, match="format 9"):
        StagedEpisode.load(episode.dir)


def test_stats_state_round_trips_exactly() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(size=(300, 3)).astype(np.float32)
    frames = rng.integers(0, 256, size=(130, 8, 8, 3), dtype=np.uint8)
    whole, first = VectorStats(3, reservoir=50), VectorStats(3, reservoir=50)
    whole.update(values[:100])
    whole.update(values[100:])
    first.update(values[:100])
    second = VectorStats.from_state(dict(first.state()))
    second.update(values[100:])
    assert second.result() == whole.result()
    assert isinstance(VectorStats.from_state(VectorStats(2).state()), VectorStats)

    images, part = ImageStats(), ImageStats()
    for frame in frames:
        images.update(frame)
    for frame in frames[:120]:
        part.update(frame)
    rest = ImageStats.from_state(part.state())
    for frame in frames[120:]:
        rest.update(frame)
    assert rest.result() == images.result()
    with pytest.raises(ValueError, match="VectorStats"):
        VectorStats.from_state({"dim": np.array(3)})
    with pytest.raises(ValueError, match="earlier version"):
        ImageStats.from_state({"seen": np.array(3), "next": np.array(3), "sampled": np.array(3)})


def test_reservoir_sample_does_not_depend_on_chunking() -> None:
    values = np.random.default_rng(8).normal(size=(5_000, 2))
    results = []
    for chunk in (1, 7, 1000):
        stats = VectorStats(2, reservoir=100)
        for start in range(0, len(values), chunk):
            stats.update(values[start : start + chunk])
        results.append({k: v for k, v in stats.result().items() if k not in ("mean", "std")})
    assert results[0] == results[1] == results[2]  # mean and std: chunk moments, equal to rounding
