"""Interrupted recordings: with salvage, a cut MCAP or ROS1 file converts up to the damage."""

import logging
from pathlib import Path

import msgspec
import numpy as np
import pytest
from tests.roboflow_pipeline.test_convert import _video_file, make_config

from roboflow_core import CorruptRecordingError, PipelineError, RoboflowConfig
from roboflow_core.config import SourceConfig
from roboflow_dataset.lerobot import read_dataset
from roboflow_dataset.synth import SynthFormat, read_marker, write_recording
from roboflow_media import iter_video_frames
from roboflow_pipeline import convert


def _episode(root: Path, cam: str) -> tuple[np.ndarray, list[int]]:
    """The states and the camera's frame markers of the dataset's only episode."""
    ds = read_dataset(root)
    assert ds.info["total_episodes"] == 1
    episode = ds.episodes.iloc[0]
    path, from_ts = _video_file(root, ds.info, episode, f"observation.images.{cam}")
    frames = list(iter_video_frames(path))
    fps = ds.info["fps"]
    markers = [read_marker(frames[round((from_ts + ts) * fps)]) for ts in ds.data["timestamp"].tolist()]
    return np.stack(ds.data["observation.state"].to_numpy()), markers


def _salvaging(config: RoboflowConfig) -> RoboflowConfig:
    return msgspec.structs.replace(config, source=SourceConfig(salvage=True))


@pytest.mark.parametrize(("fmt", "name"), [("mcap", "rec.mcap"), ("ros1", "rec.bag")])
def test_a_cut_recording_converts_up_to_the_cut(
    tmp_path: Path, fmt: SynthFormat, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    # 230 KB frames in ~1 MiB chunks: most cuts fall inside a chunk, whose whole messages count
    rec = write_recording(tmp_path / name, fmt, duration_s=2.0, width=320, height=240, seed=4)
    config = make_config(rec.cameras)
    cam = rec.cameras[0]
    convert([rec.path], config, tmp_path / "whole")
    states, markers = _episode(tmp_path / "whole", cam)

    data = rec.path.read_bytes()
    lengths = []
    # 40/70/90 % of the file, and the last bytes only (the index: an unindexed file, nothing lost)
    for i, cut in enumerate([len(data) * 4 // 10, len(data) * 7 // 10, len(data) * 9 // 10, len(data) - 64]):
        cut_path = tmp_path / f"cut{i}{rec.path.suffix}"
        cut_path.write_bytes(data[:cut])
        with pytest.raises(PipelineError, match="--salvage"):
            convert([cut_path], config, tmp_path / f"refused{i}")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="roboflow.sources"):
            convert([cut_path], _salvaging(config), tmp_path / f"salvaged{i}")
        warned = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
        assert len(warned) == 1 and "kept its first" in warned[0] and "lost: everything after" in warned[0]
        got_states, got_markers = _episode(tmp_path / f"salvaged{i}", cam)
        n = len(got_states)
        lengths.append(n)
        assert 0 < n <= len(states)
        np.testing.assert_array_equal(got_states, states[:n])  # the uncut conversion's prefix
        assert got_markers == markers[:n]
        # the frames' images fill the file: the cut keeps about its share of them
        assert n >= len(states) * cut / len(data) - 3, (cut, n)
    assert lengths == sorted(lengths) and lengths[-1] == len(states)


def test_two_passes_salvage_too(tmp_path: Path) -> None:
    """Segmented (as distributed workers stage) means two passes: they read the damaged file forward."""
    from roboflow_pipeline import convert_recording

    rec = write_recording(tmp_path / "rec.bag", "ros1", duration_s=1.0, width=320, height=240, seed=5)
    config = make_config(rec.cameras)
    whole = convert_recording(rec.path, config, tmp_path / "whole", segment_frames=8)
    data = rec.path.read_bytes()
    cut = tmp_path / "cut.bag"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptRecordingError, match="--salvage"):
        convert_recording(cut, config, tmp_path / "refused", segment_frames=8)
    part = convert_recording(cut, _salvaging(config), tmp_path / "part", segment_frames=8)
    assert whole.length // 2 - 3 <= part.length < whole.length
    assert part.stats["observation.state"]["count"] == [part.length]


def test_a_recording_beyond_a_safety_limit_gets_no_salvage_hint(tmp_path: Path) -> None:
    """Salvage cuts an interrupted recording; a hostile one (topics 10^9 s apart) is refused as it
    is, and its error does not suggest a flag that cannot help."""
    from tests.roboflow_dataset import _hostile as hostile

    from roboflow_core import loads_config

    # convert() reports each recording's failure (kind and reason) in one PipelineError
    recording = hostile.mcap_far_apart(tmp_path / "far.mcap")
    with pytest.raises(PipelineError, match="RecordingLimitError") as caught:
        convert([recording], loads_config(hostile.HOSTILE_CONFIG), tmp_path / "ds")
    assert "max_episode_seconds" in str(caught.value) and "--salvage" not in str(caught.value)
    cut = tmp_path / "cut.mcap"
    whole = write_recording(tmp_path / "whole.mcap", "mcap", duration_s=0.5).path.read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(PipelineError, match=r"CorruptRecordingError.*--salvage"):
        convert([cut], make_config(("cam_high",)), tmp_path / "ds2")
