"""The dataset at a URL: episode count and summary read from its ``meta/info.json``, the same
through a directory and a store URL; no dataset yet is 0 episodes and no summary; an unreadable
``info.json`` is a DatasetError naming the dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.roboflow_pipeline.test_convert import make_config

from roboflow_core import DatasetError
from roboflow_dataset.lerobot.reader import INFO, read_info
from roboflow_dataset.synth import write_recording
from roboflow_pipeline import Dataset, convert
from roboflow_storage import Storage


def test_a_converted_dataset_is_summarised_from_its_info(tmp_path: Path) -> None:
    recs = [write_recording(tmp_path / f"r{i}.mcap", "mcap", duration_s=1.0, seed=i) for i in range(2)]
    convert([r.path for r in recs], make_config(recs[0].cameras), tmp_path / "ds")
    info = read_info(tmp_path / "ds")
    for dataset in (Dataset(tmp_path / "ds"), Dataset(Storage.from_url((tmp_path / "ds").as_uri()))):
        assert dataset.episodes() == 2
        assert dataset.info() == info
        summary = dataset.summarize(info)
        assert (summary.codebase_version, summary.total_episodes) == ("v3.0", 2)
        assert summary.total_frames == info["total_frames"] > 0 and summary.fps == info["fps"]
        assert summary.features == tuple(info["features"])
        assert summary.cameras == tuple(f"observation.images.{c}" for c in sorted(recs[0].cameras))


def test_no_dataset_yet(tmp_path: Path) -> None:
    dataset = Dataset(tmp_path / "none")
    assert (dataset.info(), dataset.episodes()) == (None, 0)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"total_episodes": "many"}', "{}"])
def test_an_unreadable_info_is_a_dataset_error_naming_the_dataset(tmp_path: Path, text: str) -> None:
    (tmp_path / "ds/meta").mkdir(parents=True)
    (tmp_path / "ds" / INFO).write_text(text)
    with pytest.raises(DatasetError, match=r"info\.json") as caught:
        Dataset(tmp_path / "ds").episodes()
    assert str(tmp_path / "ds") in str(caught.value)


def test_a_summary_needs_the_counts(tmp_path: Path) -> None:
    (tmp_path / "ds/meta").mkdir(parents=True)
    (tmp_path / "ds" / INFO).write_text(json.dumps({"total_episodes": 1, "fps": 30, "features": {}}))
    assert Dataset(tmp_path / "ds").episodes() == 1
    dataset = Dataset(tmp_path / "ds")
    info = dataset.info()
    assert info is not None
    with pytest.raises(DatasetError, match="total_frames"):
        dataset.summarize(info)
