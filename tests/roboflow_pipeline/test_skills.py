"""Skill episodes: an annotation file's marks split one recording into one episode each."""

import json
from pathlib import Path

import numpy as np
import pytest
from tests.roboflow_pipeline.test_convert import FPS, _video_file, expected_episode, make_config, run_doctor

from roboflow_core import ConfigError, DatasetError, PipelineError
from roboflow_core.annotation import parse_annotation, read_annotation
from roboflow_dataset.lerobot import read_dataset
from roboflow_dataset.synth import read_marker, write_recording
from roboflow_media import iter_video_frames
from roboflow_pipeline import convert


def _mark(start: float, end: float, skill: str, detail: str) -> dict[str, object]:
    return {
        "taskId": "t1",
        "markStart": "2025-01-01 00:00:00.000",
        "markEnd": "2025-01-01 00:00:01.000",
        "duration": 1.0,
        "startPosition": start,
        "endPosition": end,
        "skillAtomic": skill,
        "skillDetail": detail,
        "enSkillDetail": detail,
        "markType": "step",
    }


def _annotation(*marks: dict[str, object]) -> str:
    return json.dumps({"taskName": "sorting", "deviceSn": "P4-001", "location": "lab", "marks": list(marks)})


MARKS = (
    _mark(0.55, 0.9, "place", "Place the cube"),  # out of order in the file: episodes follow time
    _mark(0.0, 0.25, "pick", "Pick up the cube"),
    _mark(0.3, 0.55, "move", "Move to the box"),
)


@pytest.mark.doctor
@pytest.mark.parametrize("fmt", ["lerobot-v3", "lerobot-v2.1"])
def test_three_marks_give_three_episodes_on_the_grid(tmp_path: Path, fmt: str) -> None:
    rec = write_recording(
        tmp_path / "rec.mcap", "mcap", duration_s=2.0, width=64, height=48, jitter_ms=3.0, seed=3
    )
    (tmp_path / "marks.json").write_text(_annotation(*MARKS))
    _, annotation = read_annotation("marks.json", base=tmp_path)
    summary = convert(
        [rec.path],
        make_config(rec.cameras),
        tmp_path / "ds",
        fmt=fmt,
        annotation=annotation,  # type: ignore[arg-type]
    )
    assert summary.episodes == 3 and not summary.failures

    whole = expected_episode(rec)
    n = len(whole["action"])
    # start * n <= k < end * n, by hand for these positions
    spans = [range(0, int(np.ceil(0.25 * n))), range(int(np.ceil(0.3 * n)), int(np.ceil(0.55 * n)))]
    spans.append(range(spans[1].stop, int(np.ceil(0.9 * n))))
    tasks = ["pick: Pick up the cube", "move: Move to the box", "place: Place the cube"]

    ds = read_dataset(tmp_path / "ds")
    assert ds.info["total_episodes"] == 3 and ds.tasks == tasks
    assert ds.info["total_frames"] == sum(len(s) for s in spans) == len(ds.data)
    for ep, (span, task) in enumerate(zip(spans, tasks, strict=True)):
        rows = ds.data[ds.data["episode_index"] == ep]
        assert len(rows) == len(span)
        assert rows["frame_index"].tolist() == list(range(len(span)))
        assert (rows["task_index"] == tasks.index(task)).all()
        np.testing.assert_array_equal(
            rows["timestamp"].to_numpy(), (np.arange(len(span)) / FPS).astype(np.float32)
        )
        states = np.stack(rows["observation.state"].to_numpy())
        # the first and last frame of each skill are the grid's frames span.start and span.stop - 1
        np.testing.assert_allclose(states[0], whole["observation.state"][span.start])
        np.testing.assert_allclose(states[-1], whole["observation.state"][span.stop - 1])
        np.testing.assert_allclose(states, whole["observation.state"][span.start : span.stop])
        episode = ds.episodes.iloc[ep]
        for cam in rec.cameras:
            path, from_ts = _video_file(tmp_path / "ds", ds.info, episode, f"observation.images.{cam}")
            frames = list(iter_video_frames(path))
            got = [read_marker(frames[round((from_ts + ts) * FPS)]) for ts in rows["timestamp"].tolist()]
            assert got == whole[cam][span.start : span.stop].tolist(), f"skill {ep} camera {cam}"
    run_doctor(tmp_path / "ds")


@pytest.mark.parametrize(
    ("marks", "needle", "key"),
    [
        (
            (_mark(0.0, 0.5, "pick", "A"), _mark(0.4, 1.0, "place", "B")),
            "marks[1] ('place: B') overlaps",
            "marks[1]",
        ),
        ((_mark(0.2, 1.3, "pick", "A"),), "marks[0] ('pick: A') lies outside the recording", "marks[0]"),
        ((_mark(0.6, 0.4, "pick", "A"),), "lies outside the recording", "marks[0]"),
        ((), "no marks", "marks"),
    ],
)
def test_bad_marks_are_errors_naming_the_mark(
    marks: tuple[dict[str, object], ...], needle: str, key: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_annotation(_annotation(*marks), source="marks.json")
    assert needle in str(err.value) and "marks.json" in str(err.value)
    assert err.value.context["key"] == key


def test_a_mark_between_two_frames_is_an_error_naming_it(tmp_path: Path) -> None:
    rec = write_recording(tmp_path / "rec.bag", "ros1", duration_s=1.0, width=32, height=24, seed=1)
    annotation = parse_annotation(_annotation(_mark(0.5, 0.501, "wave", "Wave")))
    with pytest.raises(PipelineError) as err:
        convert([rec.path], make_config(rec.cameras), tmp_path / "ds", annotation=annotation)
    assert "marks[0] ('wave: Wave') covers no frame" in str(err.value)
    assert not (tmp_path / "ds/meta/info.json").exists()
    with pytest.raises(ConfigError, match="cannot read the annotation file"):
        read_annotation("missing.json", base=tmp_path)
    assert DatasetError.__name__ in str(err.value)


def test_a_task_beside_the_marks_is_refused(tmp_path: Path) -> None:
    rec = write_recording(tmp_path / "rec.mcap", "mcap", duration_s=0.5, width=32, height=24, seed=1)
    annotation = parse_annotation(_annotation(*MARKS))
    with pytest.raises(ConfigError, match="drop --task"):
        convert(
            [rec.path],
            make_config(rec.cameras),
            tmp_path / "ds",
            annotation=annotation,
            tasks={str(rec.path): "x"},
        )
