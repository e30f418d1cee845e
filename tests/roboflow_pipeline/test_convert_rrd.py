"""Rerun .rrd recordings (written with rerun-sdk itself) -> `convert` -> the dataset read back.

The same brute-force checks as for the other formats (``verify_dataset``): every frame's marker is
the source image nearest its tick, vectors are the values held at it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests._servers import S3Bucket, moto_server, s3_bucket
from tests.roboflow_pipeline.test_convert import make_config, verify_dataset

from roboflow_core import SourceError
from roboflow_dataset.lerobot import read_dataset
from roboflow_dataset.synth import RecordingInfo, SynthFormat, write_recording
from roboflow_media import iter_video_frames
from roboflow_pipeline import convert
from roboflow_storage import Storage

__all__ = ["moto_server", "s3_bucket"]

CAPTURE = 'timeline = "capture"'
CAMERAS = ("cam_high", "cam_low")


def _recording(path: Path, fmt: SynthFormat) -> RecordingInfo:
    """Two cameras (cam_high raw, cam_low JPEG) at 30 Hz with jitter and two dropped frames,
    joints at 100 Hz, actions at 50 Hz."""
    return write_recording(
        path,
        fmt,
        duration_s=1.5,
        cameras=CAMERAS,
        compressed=("cam_low",),
        joint_hz=100.0,
        action_hz=50.0,
        jitter_ms=4.0,
        drop_frames=(10, 11),
        seed=5,
    )


def test_rrd_converts_frame_exact_on_the_capture_timeline(tmp_path: Path) -> None:
    rec = _recording(tmp_path / "rec.rrd", "rrd")
    config = make_config(CAMERAS, compressed=("cam_low",), alignment=CAPTURE)
    summary = convert([rec.path], config, tmp_path / "ds")
    assert summary.episodes == 1 and not summary.failures, summary.render()
    verify_dataset(tmp_path / "ds", [rec])


def _decoded(root: Path) -> tuple[dict[str, np.ndarray], dict[str, list[np.ndarray]]]:
    ds = read_dataset(root)
    columns = {c: np.stack(ds.data[c].to_numpy()) for c in ("observation.state", "action")}
    columns["timestamp"] = ds.data["timestamp"].to_numpy()
    videos = {p.relative_to(root).as_posix(): list(iter_video_frames(p)) for p in sorted(root.rglob("*.mp4"))}
    return columns, videos


@pytest.mark.parametrize(
    ("rrd_alignment", "mcap_alignment"),
    [(CAPTURE, 'time_source = "header"'), ("", 'time_source = "log"')],
    ids=["capture-vs-header-stamps", "log_time-vs-log-times"],
)
def test_the_same_recording_as_mcap_and_rrd_gives_the_same_dataset(
    tmp_path: Path, rrd_alignment: str, mcap_alignment: str
) -> None:
    rrd = _recording(tmp_path / "rec.rrd", "rrd")
    mcap = _recording(tmp_path / "rec.mcap", "mcap")
    assert rrd.messages == mcap.messages
    for rec, alignment in ((rrd, rrd_alignment), (mcap, mcap_alignment)):
        config = make_config(CAMERAS, compressed=("cam_low",), alignment=alignment)
        summary = convert([rec.path], config, tmp_path / f"ds-{rec.fmt}")
        assert summary.episodes == 1 and not summary.failures, summary.render()
    (rrd_rows, rrd_videos), (mcap_rows, mcap_videos) = (
        _decoded(tmp_path / "ds-rrd"),
        _decoded(tmp_path / "ds-mcap"),
    )
    assert rrd_rows.keys() == mcap_rows.keys() and len(rrd_rows["timestamp"]) > 30
    for column, values in rrd_rows.items():
        np.testing.assert_array_equal(values, mcap_rows[column], err_msg=column)
    assert rrd_videos.keys() == mcap_videos.keys() and len(rrd_videos) == 2
    for name, frames in rrd_videos.items():
        assert len(frames) == len(mcap_videos[name]) == len(rrd_rows["timestamp"])
        assert all(np.array_equal(a, b) for a, b in zip(frames, mcap_videos[name], strict=True)), name


def test_a_missing_timeline_fails_naming_the_file_and_the_timelines_it_has(tmp_path: Path) -> None:
    rec = _recording(tmp_path / "rec.rrd", "rrd")
    config = make_config(CAMERAS, compressed=("cam_low",), alignment='timeline = "device"')
    summary = convert([rec.path], config, tmp_path / "ds", on_error="skip")
    assert summary.episodes == 0 and len(summary.failures) == 1
    failure = summary.failures[0]
    assert failure.kind == SourceError.__name__ and failure.path == str(rec.path)
    assert "no timeline 'device'" in failure.reason and "capture (timestamp)" in failure.reason


@pytest.mark.object_store
def test_an_rrd_in_an_object_store_converts_like_a_local_one(tmp_path: Path, s3_bucket: S3Bucket) -> None:
    rec = _recording(tmp_path / "rec.rrd", "rrd")
    Storage.from_url(s3_bucket.url()).put("in/rec.rrd", Path(rec.path).read_bytes())
    config = make_config(CAMERAS, compressed=("cam_low",), alignment=CAPTURE)
    summary = convert([s3_bucket.url("in/rec.rrd")], config, tmp_path / "ds")
    assert summary.episodes == 1 and not summary.failures, summary.render()
    verify_dataset(tmp_path / "ds", [rec])
