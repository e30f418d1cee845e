"""inspect_source: exact counts, times and rates."""

from __future__ import annotations

from pathlib import Path

import pytest

from roboflow_dataset import inspect_source
from roboflow_dataset.synth import SynthFormat, write_recording

SAMPLES = Path(__file__).parents[2].parent / "shared" / "samples"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"sample recordings not found at {SAMPLES}")


@needs_samples
@pytest.mark.parametrize(
    ("name", "fmt", "total", "duration_s"),
    [
        ("evo/ROS_example.bag", "ros1", 26566, 889.0),
        ("evo/nav2_turtlebot.mcap", "mcap", 8197, 97.4),
        ("rosbag2/mcap/talker", "ros2", 20, 4.53),
        ("rosbag2/sqlite3/talker", "ros2", 20, 4.53),
        ("rosbags-rs/test_bag_mcap", "ros2", 188, 18.7),
        ("rosbag.js/example-bz2.bag", "ros1", 8647, 21.7),
    ],
)
def test_samples(name: str, fmt: str, total: int, duration_s: float) -> None:
    summary = inspect_source(SAMPLES / name)
    assert (summary["format"], summary["message_count"]) == (fmt, total)
    assert summary["duration_s"] == pytest.approx(duration_s, abs=0.06)
    assert sum(t["count"] for t in summary["topics"]) == total
    assert summary["end_ns"] - summary["start_ns"] == round(summary["duration_s"] * 1e9)


@needs_samples
def test_topic_entries() -> None:
    topics = {t["topic"]: t for t in inspect_source(SAMPLES / "rosbag2/mcap/talker")["topics"]}
    assert topics["/topic"] == {
        "topic": "/topic",
        "type": "std_msgs/msg/String",
        "count": 10,
        "frequency_hz": pytest.approx(2.0, rel=0.1),
        "encoding": "cdr",
    }
    assert topics["/parameter_events"]["count"] == topics["/parameter_events"]["frequency_hz"] == 0


@needs_samples
def test_empty_recording() -> None:
    summary = inspect_source(SAMPLES / "rosbag.js/no-messages.bag")
    assert summary["message_count"] == 0
    assert (summary["start_ns"], summary["end_ns"], summary["duration_s"]) == (None, None, 0.0)


@pytest.mark.parametrize("fmt", ["mcap", "ros1", "ros2-db3", "ros2-mcap"])
def test_synthetic_rates(tmp_path: Path, fmt: SynthFormat) -> None:
    write_recording(tmp_path / "r", fmt, duration_s=2.0, camera_hz=15.0, joint_hz=50.0)
    topics = {t["topic"]: t for t in inspect_source(tmp_path / "r")["topics"]}
    assert topics["/cam_high/image_raw"]["count"] == 30
    assert topics["/cam_high/image_raw"]["frequency_hz"] == pytest.approx(15.0, rel=0.01)
    assert topics["/joint_states"]["frequency_hz"] == pytest.approx(50.0, rel=0.01)
    assert topics["/action"]["type"] == "std_msgs/msg/Float32MultiArray"
