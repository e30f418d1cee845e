"""Cameras end to end: statistics of drifting content, and depth cameras in lerobot 0.6's format.

Both are checked against what the dataset's files hold: the decoded videos for the statistics,
and the source depth of each frame's chosen message (recomputed by brute force) for depth.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from tests.roboflow_pipeline.test_convert import FPS, NS, _stamps, _video_file, expected_episode
from tests.roboflow_pipeline.test_resume import Killed, kill_after

from roboflow_core import DatasetError, loads_config
from roboflow_dataset.lerobot import merge_into_dataset, read_dataset
from roboflow_dataset.lerobot.depth import DEPTH_QMAX, dequantize_depth
from roboflow_dataset.lerobot.reader import episode_stats, read_episodes
from roboflow_dataset.synth import (
    JOINT_TOPIC,
    DepthEncoding,
    RecordingInfo,
    SynthFormat,
    camera_topic,
    depth_topic,
    make_depth,
    write_recording,
)
from roboflow_media import iter_gray16_frames, iter_video_frames
from roboflow_pipeline import convert, convert_recording

CAMERA = "observation.images.cam_high"
DEPTH = "observation.images.cam_high.depth"


def _config(rec: RecordingInfo, video: str = "") -> str:
    lines = [f'[dataset]\nname = "t"\nfps = {FPS}\ntask = "pick up the cube"']
    for cam in rec.cameras:
        lines.append(
            f'[[mappings]]\ntopic = "{camera_topic(cam)}"\n'
            f'feature = "observation.images.{cam}"\nmapping_type = "image"'
        )
    for cam in rec.depth_cameras:
        lines.append(
            f'[[mappings]]\ntopic = "{depth_topic(cam, rec.depth_encoding)}"\n'
            f'feature = "observation.images.{cam}.depth"\nmapping_type = "image"'
        )
    lines.append(f'[[mappings]]\ntopic = "{JOINT_TOPIC}"\nfeature = "observation.state"')
    lines.append(f'[video]\ncodec = "libx264"\n{video}')
    return "\n".join(lines)


def _moments(frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    pixels = np.concatenate([f.reshape(-1, 3) for f in frames]).astype(np.float64) / 255.0
    return pixels.mean(axis=0), pixels.std(axis=0)


def test_camera_stats_describe_every_frame_of_drifting_content(tmp_path: Path) -> None:
    recs = [
        write_recording(
            tmp_path / f"r{i}.mcap", "mcap", duration_s=6.0 + i, width=160, height=120, drift=True, seed=i
        )
        for i in range(3)
    ]
    convert([r.path for r in recs], loads_config(_config(recs[0])), tmp_path / "ds")
    ds = read_dataset(tmp_path / "ds")
    all_frames: list[np.ndarray] = []
    per_episode = episode_stats(read_episodes(tmp_path / "ds", ds.info))
    for index, episode in ds.episodes.iterrows():
        path, from_ts = _video_file(tmp_path / "ds", ds.info, episode.to_dict(), CAMERA)
        first = round(from_ts * FPS)
        frames = list(iter_video_frames(path))[first : first + int(episode["length"])]
        mean, std = _moments(frames)
        early, _ = _moments(frames[:100])
        assert np.abs(early - mean).max() > 0.02, "the content must drift for this test to mean anything"
        stats = per_episode[int(index)][CAMERA]
        np.testing.assert_allclose(np.ravel(stats["mean"]), mean, atol=0.005)
        np.testing.assert_allclose(np.ravel(stats["std"]), std, atol=0.005)
        assert stats["count"] == [len(frames)], f"episode {index}"
        all_frames += frames
    mean, std = _moments(all_frames)
    np.testing.assert_allclose(np.ravel(ds.stats[CAMERA]["mean"]), mean, atol=0.005)
    np.testing.assert_allclose(np.ravel(ds.stats[CAMERA]["std"]), std, atol=0.005)


def _chosen_depth_messages(rec: RecordingInfo) -> list[int]:
    """The depth message index of every frame: nearest stamp to the grid (as for any image)."""
    n = len(expected_episode(rec)["observation.state"])
    start = max(int(_stamps(rec, t).min()) for t in rec.messages)
    topic = depth_topic(rec.depth_cameras[0], rec.depth_encoding)
    stamps = _stamps(rec, topic)
    return [
        rec.messages[topic][int(np.argmin(np.abs(stamps - (start + k * NS // FPS))))].index for k in range(n)
    ]


def _error_bound_mm(
    source_mm: np.ndarray, depth_min: float, depth_max: float, shift: float, log: bool
) -> np.ndarray:
    """Half a quantization step at each source depth (millimetres), plus lerobot's rounding to 1 mm."""
    if log:
        step = (source_mm / 1000 + shift) * (math.log((depth_max + shift) / (depth_min + shift)) / DEPTH_QMAX)
    else:
        step = np.full(source_mm.shape, (depth_max - depth_min) / DEPTH_QMAX)
    return step * 1000 / 2 + 0.5 + 1e-3


_LINEAR = "[video.depth]\ndepth_max = 9.5\nuse_log = false"
_CAPTURE = '[alignment]\ntimeline = "capture"'  # an .rrd's header stamps
DEPTH_CASES = [
    ("ros1", "16UC1", "", (0.01, 10.0, 3.5, True)),
    ("ros1", "compressedDepth", "", (0.01, 10.0, 3.5, True)),
    ("ros1", "32FC1", _LINEAR, (0.01, 9.5, 3.5, False)),
    ("rrd", "16UC1", _CAPTURE, (0.01, 10.0, 3.5, True)),  # rerun DepthImage, uint16 millimetres
    ("rrd", "32FC1", f"{_LINEAR}\n{_CAPTURE}", (0.01, 9.5, 3.5, False)),  # float metres
]


@pytest.mark.parametrize(
    ("fmt", "encoding", "table", "params"), DEPTH_CASES, ids=[f"{c[0]}-{c[1]}" for c in DEPTH_CASES]
)
def test_depth_camera_reads_back_within_the_quantizer_error(
    tmp_path: Path,
    fmt: SynthFormat,
    encoding: DepthEncoding,
    table: str,
    params: tuple[float, float, float, bool],
) -> None:
    rec = write_recording(
        tmp_path / f"r.{'bag' if fmt == 'ros1' else fmt}",
        fmt,
        duration_s=1.5,
        width=64,
        height=48,
        depth_cameras=("cam_high",),
        depth_encoding=encoding,
        jitter_ms=3.0,
        seed=2,
    )
    config = loads_config(_config(rec, table))
    convert([rec.path], config, tmp_path / "ds")
    ds = read_dataset(tmp_path / "ds")
    feature = ds.info["features"][DEPTH]
    unit = "m" if encoding == "32FC1" else "mm"
    depth_min, depth_max, shift, log = params
    assert (feature["dtype"], feature["shape"]) == ("video", [48, 64, 1])
    assert {
        k: feature["info"][k] for k in ("is_depth_map", "depth_unit", "video.codec", "video.pix_fmt")
    } == {
        "is_depth_map": True,
        "depth_unit": unit,
        "video.codec": "hevc",
        "video.pix_fmt": "gray12le",
    }
    assert [feature["info"][f"video.{k}"] for k in ("depth_min", "depth_max", "shift", "use_log")] == list(
        params
    )
    assert feature["info"]["video.extra_options"] == {"x265-params": "lossless=1"}

    chosen = _chosen_depth_messages(rec)
    path, _ = _video_file(tmp_path / "ds", ds.info, ds.episodes.iloc[0].to_dict(), DEPTH)
    codes = list(iter_gray16_frames(path))
    assert len(codes) == len(chosen) == len(ds.data)
    source = np.stack([make_depth(i, "cam_high", 64, 48) for i in chosen]).astype(np.float64)
    read_mm = np.stack([dequantize_depth(c[..., 0], "mm", config.video.depth) for c in codes])
    valid = source > 0
    error = np.abs(read_mm - source)
    bound = _error_bound_mm(source, depth_min, depth_max, shift, log)
    assert (error[valid] <= bound[valid]).all(), f"max error {error[valid].max()} mm"
    assert (
        read_mm[~valid] == depth_min * 1000
    ).all()  # no measurement reads back as depth_min, as in lerobot
    assert error[valid].max() > 0  # 12 bits over 0.3-9.3 m cannot be exact: the bound is what is tested

    stats = ds.stats[DEPTH]
    values = source / (1000 if unit == "m" else 1)
    assert np.asarray(stats["mean"]).shape == (1, 1, 1)
    np.testing.assert_allclose(np.ravel(stats["mean"]), values.mean(), rtol=1e-6)
    np.testing.assert_allclose(np.ravel(stats["std"]), values.std(), rtol=1e-6)
    assert np.ravel(stats["min"]).tolist() == [0.0]
    assert np.ravel(stats["max"]) == pytest.approx(values.max())


def test_depth_into_a_v21_dataset_is_a_clear_error(tmp_path: Path) -> None:
    rec = write_recording(
        tmp_path / "r.mcap", "mcap", duration_s=0.5, width=64, height=48, depth_cameras=("cam_high",)
    )
    with pytest.raises(DatasetError, match=r"depth cameras need the v3\.0 format") as caught:
        convert([rec.path], loads_config(_config(rec)), tmp_path / "ds", fmt="lerobot-v2.1")
    assert DEPTH in str(caught.value)
    assert not (tmp_path / "ds/meta/info.json").exists()


def test_depth_info_is_what_lerobot_061_writes(tmp_path: Path) -> None:
    """The fields the issue quotes from a dataset written by lerobot 0.6.1 itself (320x240 16UC1)."""
    rec = write_recording(
        tmp_path / "r.mcap", "mcap", duration_s=0.2, width=320, height=240, cameras=(), depth_cameras=("cam",)
    )
    convert([rec.path], loads_config(_config(rec)), tmp_path / "ds")
    feature = json.loads((tmp_path / "ds/meta/info.json").read_text())["features"][
        "observation.images.cam.depth"
    ]
    assert (feature["dtype"], feature["shape"]) == ("video", [240, 320, 1])
    expected = {
        "is_depth_map": True,
        "depth_unit": "mm",
        "video.codec": "hevc",
        "video.pix_fmt": "gray12le",
        "video.depth_min": 0.01,
        "video.depth_max": 10.0,
        "video.shift": 3.5,
        "video.use_log": True,
        "video.extra_options": {"x265-params": "lossless=1"},
    }
    assert {k: feature["info"].get(k) for k in expected} == expected


def test_a_killed_segmented_depth_conversion_resumes_to_the_same_codes_and_stats(tmp_path: Path) -> None:
    rec = write_recording(
        tmp_path / "r.mcap", "mcap", duration_s=1.0, width=64, height=48, depth_cameras=("cam_high",), seed=4
    )
    config = loads_config(_config(rec))
    whole = convert_recording(rec.path, config, tmp_path / "whole")
    with pytest.raises(Killed):
        convert_recording(rec.path, config, tmp_path / "stage", segment_frames=8, on_frames=kill_after(12))
    resumed = convert_recording(rec.path, config, tmp_path / "stage", segment_frames=8, resume=True)
    assert len(resumed.part_lengths) > 2
    assert resumed.stats[DEPTH] == whole.stats[DEPTH]
    assert resumed.videos[DEPTH].depth_unit == "mm"
    codes = []
    for name, episode in (("a", whole), ("b", resumed)):
        merge_into_dataset(tmp_path / name, [episode], robot_type=None, fps=FPS)
        codes.append(
            np.stack(list(iter_gray16_frames(tmp_path / name / f"videos/{DEPTH}/chunk-000/file-000.mp4")))
        )
    np.testing.assert_array_equal(codes[0], codes[1])  # lossless: the codes themselves
