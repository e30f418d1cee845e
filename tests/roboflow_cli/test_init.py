"""`roboflow init`: a starter config written from a recording loads, and converts what it maps."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.roboflow_dataset.test_sources import SAMPLES, needs_samples

from roboflow_cli.main import cli
from roboflow_core import ConfigError, load_config
from roboflow_dataset.lerobot import read_dataset
from roboflow_dataset.starter import starter_config
from roboflow_dataset.synth import SynthFormat, write_recording

_FAST = '[video]\ncodec = "libx264"\n'


def _init(recording: Path, config: Path) -> str:
    result = CliRunner().invoke(cli, ["init", str(recording), "-o", str(config)])
    assert result.exit_code == 0, result.output
    return config.read_text()


def _convert(recording: Path, config: Path, output: Path) -> None:
    # the starter's lerobot defaults (AV1) are slow here: the tests encode with x264
    text = config.read_text().split("[video]")[0] + _FAST
    fast = config.with_name("fast.toml")
    fast.write_text(text)
    result = CliRunner().invoke(cli, ["convert", str(recording), "-c", str(fast), "-o", str(output)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("fmt", "compressed"), [("mcap", False), ("ros1", True), ("ros2-db3", False)])
def test_init_on_sample_output_maps_camera_state_and_action_and_converts(
    tmp_path: Path, fmt: SynthFormat, compressed: bool
) -> None:
    rec = write_recording(tmp_path / "rec", fmt, duration_s=1.0, compressed=compressed, camera_hz=15)
    text = _init(rec.path, tmp_path / "robot.toml")
    config = load_config(tmp_path / "robot.toml")
    assert config.dataset.fps == 15, "fps is the camera's rate"
    by_feature = {m.feature: m for m in config.mappings}
    assert set(by_feature) == {"observation.images.cam_high", "observation.state", "action"}
    assert by_feature["observation.images.cam_high"].is_image
    assert by_feature["observation.state"].topic == "/joint_states"
    assert by_feature["action"].topic == "/action"
    assert "roboflow convert" in text and "# camera:" in text
    _convert(rec.path, tmp_path / "robot.toml", tmp_path / "ds")
    ds = read_dataset(tmp_path / "ds")
    assert ds.info["fps"] == 15 and ds.info["total_episodes"] == 1
    assert {"observation.images.cam_high", "observation.state", "action"} <= set(ds.info["features"])
    assert len(ds.data) == ds.info["total_frames"] and abs(len(ds.data) - 15) <= 1  # 1 s at 15 fps


def test_depth_cameras_are_marked(tmp_path: Path) -> None:
    rec = write_recording(tmp_path / "rec.mcap", "mcap", duration_s=0.5, depth_cameras=("cam_high",))
    text = starter_config(rec.path)
    assert "# depth camera:" in text
    assert 'feature = "observation.images.cam_high_depth"' in text


def test_init_refuses_to_overwrite_and_prints_without_output(tmp_path: Path) -> None:
    rec = write_recording(tmp_path / "rec.mcap", "mcap", duration_s=0.3)
    existing = tmp_path / "robot.toml"
    existing.write_text("mine")
    result = CliRunner().invoke(cli, ["init", str(rec.path), "-o", str(existing)])
    assert result.exit_code != 0 and "exists" in result.output
    assert existing.read_text() == "mine"
    printed = CliRunner().invoke(cli, ["init", str(rec.path)])
    assert printed.exit_code == 0 and printed.output.startswith("# Starter config")


_SAMPLE_RECORDINGS = [
    "embag/array_test.bag",
    "embag/test.bag",
    "embag/test_2.bag",
    "evo/ROS_example.bag",
    "evo/nav2_turtlebot.mcap",
    "evo/tf_example",
    "evo/tf_example.bag",
    "ros2bag_tools/images.bag",
    "rosbag.js/example.bag",
    "rosbag.js/example-bz2.bag",
    "rosbag.js/example-lz4.bag",
    "rosbag.js/example-unsorted-chunks.bag",
    "rosbag.js/no-messages.bag",
    "rosbag2/mcap/talker",
    "rosbag2/sqlite3/talker",
    "rosbags-rs/test_bag_mcap",
    "rosbags-rs/test_bag_sqlite3",
]


@needs_samples
@pytest.mark.parametrize("name", _SAMPLE_RECORDINGS)
def test_init_on_every_sample_loads_or_says_there_is_nothing_to_map(name: str, tmp_path: Path) -> None:
    try:
        text = starter_config(SAMPLES / name)
    except ConfigError as err:
        assert "nothing to map" in str(err) and name in str(err)
        return
    config_path = tmp_path / "robot.toml"
    config_path.write_text(text)
    config = load_config(config_path)
    assert config.mappings, "a starter config maps something"
    if any(m.is_image for m in config.mappings):
        _convert(SAMPLES / name, config_path, tmp_path / "ds")
        assert read_dataset(tmp_path / "ds").info["total_episodes"] == 1


@needs_samples
def test_cameras_that_do_not_decode_are_left_out_with_the_reason() -> None:
    text = starter_config(SAMPLES / "rosbags-rs/test_bag_mcap")
    assert "# left out: its first message does not decode" in text
    assert '\ntopic = "/test/sensor_msgs/image"' not in text  # commented out
    assert '# topic = "/test/sensor_msgs/image"' in text
