"""write_dataset: the library's entry point gives the dataset `roboflow convert` gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.roboflow_pipeline.test_convert import make_config, verify_dataset
from tests.roboflow_pipeline.test_convert_s3 import assert_same_dataset, files_of

from roboflow_core import ConfigError, DatasetError, SourceError
from roboflow_core.annotation import Annotation
from roboflow_dataset.convert import write_dataset
from roboflow_dataset.lerobot import read_dataset
from roboflow_dataset.synth import write_recording
from roboflow_pipeline import convert


def test_write_dataset_gives_what_roboflow_convert_gives_and_appends(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    recs = [
        write_recording(tmp_path / "in" / "a.mcap", "mcap", duration_s=0.8, seed=1),  # one pass
        write_recording(tmp_path / "in" / "b.bag", "ros1", duration_s=0.6, jitter_ms=3.0, seed=2),
        write_recording(tmp_path / "in" / "c", "ros2-db3", duration_s=0.7, seed=3),  # two passes
    ]
    config = make_config(recs[0].cameras)
    out = tmp_path / "out"

    written = write_dataset([r.path for r in recs[:2]], config, out / "lib")
    convert([r.path for r in recs[:2]], config, out / "pipeline")

    assert (written.root, written.fmt, written.episode_indices) == (out / "lib", "lerobot-v3", (0, 1))
    assert written.total_frames == read_dataset(out / "lib").info["total_frames"] > 0
    verify_dataset(out / "lib", recs[:2])
    assert_same_dataset(out / "lib", out / "pipeline")

    appended = write_dataset(recs[2].path, config, out / "lib")
    assert appended.episode_indices == (2,) and appended.total_episodes == 3
    verify_dataset(out / "lib", recs)
    assert sorted(p.name for p in out.iterdir()) == ["lib", "pipeline"]  # no staging left behind


def test_a_failed_recording_leaves_the_dataset_as_it_was(tmp_path: Path) -> None:
    good = write_recording(tmp_path / "good.mcap", "mcap", duration_s=0.5, seed=4)
    config = make_config(good.cameras)
    write_dataset(good.path, config, tmp_path / "ds")
    before = files_of(tmp_path / "ds")
    with pytest.raises(SourceError, match="no such file") as caught:
        write_dataset([good.path, tmp_path / "absent.mcap"], config, tmp_path / "ds")
    assert caught.value.context["path"] == str(tmp_path / "absent.mcap")
    assert files_of(tmp_path / "ds") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "good.mcap"]


def test_what_write_dataset_refuses(tmp_path: Path) -> None:
    good = write_recording(tmp_path / "good.mcap", "mcap", duration_s=0.3, seed=5)
    config = make_config(good.cameras)
    with pytest.raises(DatasetError, match=r"roboflow_pipeline\.convert publishes to a store"):
        write_dataset(good.path, config, "s3://bucket/ds")
    with pytest.raises(DatasetError, match="no recording"):
        write_dataset([], config, tmp_path / "ds")
    with pytest.raises(ConfigError, match="annotation_file"):
        write_dataset(good.path, config, tmp_path / "ds", task="x", annotation=Annotation())
    assert not (tmp_path / "ds").exists()
