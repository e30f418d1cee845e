"""End to end: generated recordings -> `convert` -> the dataset read back from its files.

Each converted dataset is checked against an independent, brute-force re-computation of what it
must hold: parquet rows vs decoded video frames vs timestamps, frame-exact.
"""

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from roboflow_core import MissingTopicError, PipelineError, RoboflowConfig, loads_config
from roboflow_dataset.lerobot import read_dataset
from roboflow_dataset.synth import (
    ACTION_TOPIC,
    JOINT_TOPIC,
    RecordingInfo,
    SynthFormat,
    action_at,
    camera_topic,
    joint_state_at,
    read_marker,
    write_recording,
)
from roboflow_media import iter_video_frames
from roboflow_pipeline import convert

FPS = 30
NS = 1_000_000_000


def make_config(
    cameras: Sequence[str],
    *,
    compressed: bool | Sequence[str] = False,
    codec: str = "libx264",
    alignment: str = "",
) -> RoboflowConfig:
    """The synthetic recordings' mappings (``compressed``: every camera, or those named);
    ``alignment`` is the body of an ``[alignment]`` table."""
    lines = [f'[dataset]\nname = "t"\nfps = {FPS}\nrobot_type = "synth"\ntask = "pick up the cube"']
    for cam in cameras:
        jpeg = compressed is True or (not isinstance(compressed, bool) and cam in compressed)
        lines.append(
            f'[[mappings]]\ntopic = "{camera_topic(cam, jpeg)}"\n'
            f'feature = "observation.images.{cam}"\nmapping_type = "image"'
        )
    lines.append(f'[[mappings]]\ntopic = "{JOINT_TOPIC}"\nfeature = "observation.state"')
    lines.append(f'[[mappings]]\ntopic = "{ACTION_TOPIC}"\nfeature = "action"\nmapping_type = "action"')
    lines.append(f'[video]\ncodec = "{codec}"')
    if alignment:
        lines.append(f"[alignment]\n{alignment}")
    return loads_config("\n".join(lines))


def _stamps(rec: RecordingInfo, topic: str) -> np.ndarray:
    return np.array([m.header_stamp_ns or m.log_time_ns for m in rec.messages[topic]], dtype=np.int64)


def expected_episode(rec: RecordingInfo) -> dict[str, np.ndarray]:
    """What the episode must contain, recomputed by brute force from what was written."""
    topics = list(rec.messages)
    stamps = {t: _stamps(rec, t) for t in topics}
    start = max(int(s.min()) for s in stamps.values())
    end = min(int(s.max()) for s in stamps.values())
    grid = [start + k * NS // FPS for k in range((end - start) * FPS // NS + 1)]
    out: dict[str, np.ndarray] = {}
    for cam in rec.cameras:
        topic = rec.topic_of(cam)
        msgs = rec.messages[topic]
        out[cam] = np.array([msgs[int(np.argmin(np.abs(stamps[topic] - t)))].index for t in grid])

    def held(topic: str, t: int) -> int:
        return rec.messages[topic][int(np.nonzero(stamps[topic] <= t)[0][-1])].index

    out["observation.state"] = np.array(
        [joint_state_at(held(JOINT_TOPIC, t) / rec.joint_hz)[0] for t in grid], dtype=np.float32
    )
    out["action"] = np.array(
        [action_at(held(ACTION_TOPIC, t) / rec.action_hz) for t in grid], dtype=np.float32
    )
    return out


def _video_file(root: Path, info: dict, episode: dict, key: str) -> tuple[Path, float]:
    if info["codebase_version"] == "v2.1":
        chunk = episode["episode_index"] // info["chunks_size"]
        rel = info["video_path"].format(
            episode_chunk=chunk, video_key=key, episode_index=episode["episode_index"]
        )
        return root / rel, 0.0
    rel = info["video_path"].format(
        video_key=key,
        chunk_index=int(episode[f"videos/{key}/chunk_index"]),
        file_index=int(episode[f"videos/{key}/file_index"]),
    )
    return root / rel, float(episode[f"videos/{key}/from_timestamp"])


def verify_dataset(
    root: Path, recordings: Sequence[RecordingInfo], *, task: str = "pick up the cube"
) -> None:
    """Read the dataset back and check every row, frame and metadata total."""
    ds = read_dataset(root)
    info, data, episodes = ds.info, ds.data, ds.episodes
    assert info["total_episodes"] == len(episodes) == len(recordings)
    assert info["total_frames"] == len(data)
    assert data["index"].tolist() == list(range(len(data)))
    assert ds.tasks == [task]
    decoded: dict[Path, list[np.ndarray]] = {}
    for ep_idx, rec in enumerate(recordings):
        expected = expected_episode(rec)
        rows = data[data["episode_index"] == ep_idx]
        n = len(expected["action"])
        assert len(rows) == n, f"episode {ep_idx}: {len(rows)} rows, expected {n}"
        assert rows["frame_index"].tolist() == list(range(n))
        np.testing.assert_array_equal(rows["timestamp"].to_numpy(), (np.arange(n) / FPS).astype(np.float32))
        assert (rows["task_index"] == 0).all()
        np.testing.assert_allclose(
            np.stack(rows["observation.state"].to_numpy()), expected["observation.state"]
        )
        np.testing.assert_allclose(np.stack(rows["action"].to_numpy()), expected["action"])
        episode = episodes.iloc[ep_idx]
        assert int(episode["length"]) == n
        for cam in rec.cameras:
            key = f"observation.images.{cam}"
            path, from_ts = _video_file(root, info, episode, key)
            frames = decoded.setdefault(path, list(iter_video_frames(path)))
            markers = [read_marker(frames[round((from_ts + ts) * FPS)]) for ts in rows["timestamp"].tolist()]
            assert markers == expected[cam].tolist(), f"episode {ep_idx} camera {cam}: frames differ"
    for frames in decoded.values():
        assert frames, "a video decoded to no frames"


def run_doctor(root: Path) -> dict:
    doctor = Path(sys.executable).parent / "lerobot-doctor"
    out = subprocess.run(
        [str(doctor), "check", str(root), "--json"], capture_output=True, text=True, check=False
    )
    report = json.loads(out.stdout)
    fails = [
        (c.get("name"), m)
        for c in report["checks"]
        for m in c.get("messages", [])
        if m.get("severity") == "FAIL"
    ]
    assert not fails, fails
    return report


FORMATS: list[SynthFormat] = ["mcap", "ros1", "ros2-db3", "ros2-mcap"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "jpeg"])
def test_every_format_converts_frame_exact(tmp_path: Path, fmt: SynthFormat, compressed: bool) -> None:
    suffix = {"mcap": ".mcap", "ros1": ".bag"}.get(fmt, "")
    rec = write_recording(
        tmp_path / f"rec{suffix}",
        fmt,
        duration_s=1.5,
        width=64,
        height=48,
        compressed=compressed,
        jitter_ms=3.0,
        drop_frames=(10,),
        seed=1,
    )
    summary = convert([rec.path], make_config(rec.cameras, compressed=compressed), tmp_path / "ds")
    assert summary.episodes == 1 and not summary.failures
    assert summary.encoders == {"pyav"}
    verify_dataset(tmp_path / "ds", [rec])


@pytest.mark.doctor
def test_two_cameras_av1_defaults_and_lerobot_doctor(tmp_path: Path) -> None:
    recs = [
        write_recording(
            tmp_path / f"r{i}.mcap",
            "mcap",
            duration_s=2.0,
            cameras=("cam_high", "cam_wrist"),
            width=64,
            height=48,
            jitter_ms=2.0,
            seed=i,
        )
        for i in range(2)
    ]
    config = make_config(("cam_high", "cam_wrist"), codec="libsvtav1")
    convert([r.path for r in recs], config, tmp_path / "ds")
    verify_dataset(tmp_path / "ds", recs)
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    assert info["features"]["observation.images.cam_high"]["info"]["video.codec"] == "av1"
    assert info["features"]["observation.state"]["names"][0] == "waist"
    run_doctor(tmp_path / "ds")


def test_parallel_jobs_give_the_same_dataset_as_one_job(tmp_path: Path) -> None:
    recs = [
        write_recording(tmp_path / f"r{i}.bag", "ros1", duration_s=1.0 + 0.2 * i, width=64, height=48, seed=i)
        for i in range(3)
    ]
    config = make_config(recs[0].cameras)
    one = convert([str(tmp_path / "r*.bag")], config, tmp_path / "one")
    two = convert([str(tmp_path / "r*.bag")], config, tmp_path / "two", jobs=2)
    assert one.frames == two.frames > 0
    a, b = read_dataset(tmp_path / "one"), read_dataset(tmp_path / "two")
    assert a.data.drop(columns=[]).equals(b.data)
    verify_dataset(tmp_path / "two", recs)


def test_converting_into_an_existing_dataset_appends(tmp_path: Path) -> None:
    recs = [write_recording(tmp_path / f"r{i}.mcap", "mcap", duration_s=1.0, seed=i) for i in range(2)]
    config = make_config(recs[0].cameras)
    convert([recs[0].path], config, tmp_path / "ds")
    summary = convert([recs[1].path], config, tmp_path / "ds")
    assert summary.total_episodes == 2
    verify_dataset(tmp_path / "ds", recs)


def test_v21_format(tmp_path: Path) -> None:
    recs = [write_recording(tmp_path / f"r{i}.mcap", "mcap", duration_s=1.0, seed=i) for i in range(2)]
    convert([r.path for r in recs], make_config(recs[0].cameras), tmp_path / "ds", fmt="lerobot-v2.1")
    assert (tmp_path / "ds/data/chunk-000/episode_000001.parquet").is_file()
    assert (tmp_path / "ds/meta/episodes.jsonl").is_file()
    verify_dataset(tmp_path / "ds", recs)


def _corrupt_copy(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def test_bad_recordings_skip_or_fail_without_a_half_written_dataset(tmp_path: Path) -> None:
    good = write_recording(tmp_path / "a_good.mcap", "mcap", duration_s=1.0)
    bad = _corrupt_copy(
        write_recording(tmp_path / "src.bag", "ros1", duration_s=1.0).path, tmp_path / "b_bad.bag"
    )
    config = make_config(good.cameras)
    with pytest.raises(PipelineError) as info:
        convert([good.path, bad], config, tmp_path / "failed")
    assert "b_bad.bag" in str(info.value)
    assert not (tmp_path / "failed" / "meta" / "info.json").exists()
    summary = convert([good.path, bad], config, tmp_path / "ds", on_error="skip")
    assert summary.episodes == 1
    assert [f.path for f in summary.failures] == [str(bad)]
    assert "b_bad.bag" in summary.render()
    verify_dataset(tmp_path / "ds", [good])
    assert not list(tmp_path.glob(".*.staging")), "staging directories were left behind"


def test_missing_topic_names_file_and_topic(tmp_path: Path) -> None:
    rec = write_recording(tmp_path / "r.mcap", "mcap", duration_s=1.0)
    config = make_config(("cam_missing",))
    with pytest.raises(PipelineError) as info:
        convert([rec.path], config, tmp_path / "ds")
    message = str(info.value)
    assert "r.mcap" in message and "/cam_missing/image_raw" in message
    assert MissingTopicError.__name__ in message


def test_malformed_image_message_is_a_clear_error(tmp_path: Path) -> None:
    sample = Path(__file__).parents[2].parent / "shared" / "samples" / "rosbags-rs" / "test_bag_mcap"
    if not sample.exists():
        pytest.skip("shared/samples is not next to the repo")
    shutil.copytree(sample, tmp_path / "bag")
    config = loads_config(
        '[dataset]\nname = "t"\nfps = 10\n[[mappings]]\ntopic = "/test/sensor_msgs/image"\n'
        'feature = "observation.images.cam"\nmapping_type = "image"\n'
    )
    with pytest.raises(PipelineError) as info:
        convert([tmp_path / "bag"], config, tmp_path / "ds")
    message = str(info.value)
    assert "/test/sensor_msgs/image" in message and "expected" in message and "bag" in message


def test_timestamp_mapping_records_the_source_time_of_any_message_type(tmp_path: Path) -> None:
    rec = write_recording(tmp_path / "r.mcap", "mcap", duration_s=1.0, seed=3)
    cam = camera_topic("cam_high")
    config = loads_config(
        f'[dataset]\nname = "t"\nfps = {FPS}\n'
        f'[[mappings]]\ntopic = "{JOINT_TOPIC}"\nfeature = "observation.state"\n'
        f'[[mappings]]\ntopic = "{cam}"\nfeature = "observation.camera_time"\nmapping_type = "timestamp"\n'
    )
    convert([rec.path], config, tmp_path / "ds")
    ds = read_dataset(tmp_path / "ds")
    info = ds.info["features"]["observation.camera_time"]
    assert (info["dtype"], info["names"]) == ("float64", ["time_s"])
    stamps = _stamps(rec, cam)
    joints = _stamps(rec, JOINT_TOPIC)
    start = max(int(stamps.min()), int(joints.min()))
    got = ds.data["observation.camera_time"].to_numpy()
    for k, value in enumerate(got):
        t = start + k * NS // FPS
        held = stamps[stamps <= t].max()  # timestamp mappings hold the last message
        assert value == pytest.approx(held / 1e9, abs=1e-6)
