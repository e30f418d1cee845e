"""Segmented conversion of one recording, killed part-way and resumed: the same dataset as uninterrupted."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import msgspec
import pytest
from tests.roboflow_pipeline.test_convert import FPS, make_config, run_doctor, verify_dataset

from roboflow_core import DatasetError, RoboflowConfig
from roboflow_dataset.extract import ImageExtractor
from roboflow_dataset.lerobot import (
    ClosedSegment,
    StagedEpisode,
    closed_segments,
    merge_into_dataset,
    read_dataset,
)
from roboflow_dataset.sources import Message, Source, open_source
from roboflow_dataset.synth import JOINT_TOPIC, RecordingInfo, SynthFormat, read_marker, write_recording
from roboflow_media import iter_video_frames
from roboflow_pipeline import convert_recording

SEGMENT = 8


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> RecordingInfo:
    directory = tmp_path_factory.mktemp("rec")
    return write_recording(
        directory / "r.mcap",
        "mcap",
        duration_s=2.0,
        cameras=("cam_high", "cam_wrist"),
        width=64,
        height=48,
        jitter_ms=3.0,
        drop_frames=(12,),
        seed=5,
    )


def segment_config(cameras: tuple[str, ...]) -> RoboflowConfig:
    """Flushes every 4 rows, so that segments of 8 frames flush where one part does."""
    base = make_config(cameras)
    flushing = msgspec.structs.replace(base.flushing, max_frames_per_chunk=4)
    return msgspec.structs.replace(base, flushing=flushing)


@pytest.fixture(scope="module")
def config(recording: RecordingInfo) -> RoboflowConfig:
    return segment_config(recording.cameras)


def merged(root: Path, episode: StagedEpisode) -> Path:
    merge_into_dataset(root, [episode], robot_type="synth", fps=FPS)
    return root


def assert_same_dataset(a: Path, b: Path) -> None:
    """Same rows, episodes metadata and stats; every decoded frame shows the same source image.

    Pixels are not compared: libx264 in threads is not always bit-reproducible under load.
    """
    first, second = read_dataset(a), read_dataset(b)
    assert first.data.equals(second.data)
    assert first.stats == second.stats
    assert first.episodes.equals(second.episodes)
    for key in (k for k in first.info["features"] if k.startswith("observation.images.")):
        path = f"videos/{key}/chunk-000/file-000.mp4"
        markers = [[read_marker(frame) for frame in iter_video_frames(root / path)] for root in (a, b)]
        assert markers[0] == markers[1] and len(markers[0]) == len(first.data)


def kill_after(frames: int) -> Callable[[int], None]:
    seen = 0

    def on_frames(n: int) -> None:
        nonlocal seen
        seen += n
        if seen >= frames:
            raise Killed(f"killed after {seen} frames")

    return on_frames


@pytest.fixture(scope="module")
def uninterrupted(
    tmp_path_factory: pytest.TempPathFactory, recording: RecordingInfo, config: RoboflowConfig
) -> Path:
    directory = tmp_path_factory.mktemp("uninterrupted")
    episode = convert_recording(recording.path, config, directory / "stage", segment_frames=SEGMENT)
    assert len(episode.part_lengths) > 3
    return merged(directory / "ds", episode)


def test_segmented_conversion_equals_one_part(
    tmp_path: Path, recording: RecordingInfo, config: RoboflowConfig, uninterrupted: Path
) -> None:
    whole = convert_recording(recording.path, config, tmp_path / "whole")
    assert whole.part_lengths == (whole.length,)
    root = merged(tmp_path / "ds", whole)
    verify_dataset(root, [recording])
    verify_dataset(uninterrupted, [recording])
    assert_same_dataset(root, uninterrupted)


def test_pass_one_reports_the_messages_it_reads_before_any_frame(
    tmp_path: Path, recording: RecordingInfo, config: RoboflowConfig
) -> None:
    events: list[tuple[str, int]] = []
    convert_recording(
        recording.path,
        config,
        tmp_path / "stage",
        segment_frames=SEGMENT,
        on_read=lambda n: events.append(("read", n)),
        on_frames=lambda n: events.append(("frames", n)),
    )
    first_frames = next(i for i, (kind, _) in enumerate(events) if kind == "frames")
    reads = [n for kind, n in events if kind == "read"]
    assert first_frames > 0 and all(kind == "read" for kind, _ in events[:first_frames])
    with open_source(recording.path) as source:  # pass 1 reads the mapped topics' messages once
        mapped = [m.topic for m in config.mappings]
        assert sum(reads) == sum(1 for _ in source.messages(mapped))


def test_killed_conversion_resumes_after_its_closed_segments(
    tmp_path: Path,
    recording: RecordingInfo,
    config: RoboflowConfig,
    uninterrupted: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stage = tmp_path / "stage"
    reported: list[ClosedSegment] = []
    with pytest.raises(Killed):
        convert_recording(
            recording.path,
            config,
            stage,
            segment_frames=SEGMENT,
            on_segment=reported.append,
            on_frames=kill_after(25),
        )
    assert [s.end for s in reported] == [8, 16, 24]  # killed at frame 30
    assert closed_segments(stage) == tuple(reported)
    assert not (stage / "segments/000003").exists(), "the unfinished segment was not removed"

    decoded: list[int] = []
    original = ImageExtractor.from_message

    def counting(self: ImageExtractor, msg: object) -> object:
        decoded.append(1)
        return original(self, msg)  # type: ignore[arg-type]

    monkeypatch.setattr(ImageExtractor, "from_message", counting)
    progress: list[int] = []
    episode = convert_recording(
        recording.path,
        config,
        stage,
        segment_frames=SEGMENT,
        on_segment=reported.append,
        on_frames=progress.append,
        resume=True,
    )
    assert [s.index for s in reported] == list(range(len(episode.part_lengths)))
    assert sum(progress) == episode.length
    assert len(decoded) <= 2 * (episode.length - 24 + 1), "staged frames were decoded again"
    root = merged(tmp_path / "ds", episode)
    verify_dataset(root, [recording])
    assert_same_dataset(root, uninterrupted)


def test_kill_from_on_segment_and_resume_of_a_finished_stage(
    tmp_path: Path, recording: RecordingInfo, config: RoboflowConfig, uninterrupted: Path
) -> None:
    stage = tmp_path / "stage"

    def on_segment(segment: ClosedSegment) -> None:
        if segment.index == 2:
            raise Killed("upload failed")

    with pytest.raises(Killed):
        convert_recording(recording.path, config, stage, segment_frames=SEGMENT, on_segment=on_segment)
    assert [s.end for s in closed_segments(stage)] == [8, 16, 24]
    episode = convert_recording(recording.path, config, stage, segment_frames=SEGMENT, resume=True)
    again = convert_recording(recording.path, config, stage, segment_frames=SEGMENT, resume=True)
    assert again == episode
    assert_same_dataset(merged(tmp_path / "ds", episode), uninterrupted)


_KILL_SCRIPT = """
import os, signal, sys
from pathlib import Path
from roboflow_pipeline import convert_recording
from tests.roboflow_pipeline.test_resume import SEGMENT, segment_config

def on_segment(segment):
    if segment.index == 1:
        os.kill(os.getpid(), signal.SIGKILL)

config = segment_config(("cam_high", "cam_wrist"))
convert_recording(sys.argv[1], config, Path(sys.argv[2]), segment_frames=SEGMENT, on_segment=on_segment)
"""


@pytest.mark.doctor
def test_sigkilled_conversion_leaves_junk_that_resume_removes(
    tmp_path: Path, recording: RecordingInfo, config: RoboflowConfig, uninterrupted: Path
) -> None:
    stage = tmp_path / "stage"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    killed = subprocess.run(
        [sys.executable, "-c", _KILL_SCRIPT, str(recording.path), str(stage)], env=env, check=False
    )
    assert killed.returncode == -9
    (stage / "segments/000002").mkdir(exist_ok=True)
    (stage / "segments/000002/observation.images.cam_high.mp4").write_bytes(b"\0" * 100)  # as if mid-encode
    (stage / ".episode.json.tmp").write_text("{")
    assert [s.end for s in closed_segments(stage)] == [8, 16]

    episode = convert_recording(recording.path, config, stage, segment_frames=SEGMENT, resume=True)
    listed = {f for s in closed_segments(stage) for f in (*s.files, s.manifest)} | {"episode.json"}
    assert {p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file()} == listed
    root = merged(tmp_path / "ds", episode)
    verify_dataset(root, [recording])
    assert_same_dataset(root, uninterrupted)
    run_doctor(root)


def test_resume_refuses_a_stage_of_another_recording_or_config(
    tmp_path: Path, recording: RecordingInfo, config: RoboflowConfig
) -> None:
    stage = tmp_path / "stage"
    with pytest.raises(Killed):
        convert_recording(recording.path, config, stage, segment_frames=SEGMENT, on_frames=kill_after(25))
    other = write_recording(
        tmp_path / "other.mcap", "mcap", duration_s=1.0, cameras=recording.cameras, seed=9
    )
    before = sorted(stage.rglob("*"))
    with pytest.raises(DatasetError, match="of something else"):
        convert_recording(other.path, config, stage, segment_frames=SEGMENT, resume=True)
    changed = msgspec.structs.replace(config, video=msgspec.structs.replace(config.video, crf=20))
    with pytest.raises(DatasetError, match="different recording or config"):
        convert_recording(recording.path, changed, stage, segment_frames=SEGMENT, resume=True)
    assert sorted(stage.rglob("*")) == before


def test_resume_without_closed_segments_starts_afresh(
    tmp_path: Path, recording: RecordingInfo, config: RoboflowConfig, uninterrupted: Path
) -> None:
    stage = tmp_path / "stage"
    (stage / "segments/000000").mkdir(parents=True)
    (stage / "segments/000000/data.parquet").write_bytes(b"partial")
    episode = convert_recording(recording.path, config, stage, segment_frames=SEGMENT, resume=True)
    assert_same_dataset(merged(tmp_path / "ds", episode), uninterrupted)


@pytest.mark.parametrize("fmt", ["mcap", "ros1", "ros2-db3", "ros2-mcap"])
def test_a_resume_reads_the_recording_only_from_its_resume_point(
    tmp_path: Path, fmt: SynthFormat, monkeypatch: pytest.MonkeyPatch
) -> None:
    suffix = {"mcap": ".mcap", "ros1": ".bag"}.get(fmt, "")
    rec = write_recording(
        tmp_path / f"rec{suffix}", fmt, duration_s=2.0, width=64, height=48, jitter_ms=3.0, seed=7
    )
    config = segment_config(rec.cameras)
    whole = convert_recording(rec.path, config, tmp_path / "whole", segment_frames=SEGMENT)
    stage = tmp_path / "stage"
    with pytest.raises(Killed):
        convert_recording(rec.path, config, stage, segment_frames=SEGMENT, on_frames=kill_after(40))
    reads: list[tuple[int | None, list[int]]] = []  # (start_ns, [messages read]) of each pass
    original = Source.messages

    def counted(
        self: Source, topics: Iterable[str] | None = None, start_ns: int | None = None
    ) -> Iterator[Message]:
        count = [0]
        reads.append((start_ns, count))
        for msg in original(self, topics, start_ns):
            count[0] += 1
            yield msg

    monkeypatch.setattr(Source, "messages", counted)
    resumed = convert_recording(rec.path, config, stage, segment_frames=SEGMENT, resume=True)
    (scan_from, scanned), (read_from, read) = reads
    assert scan_from is None
    assert read_from is not None and read_from > rec.messages[JOINT_TOPIC][0].log_time_ns
    assert 0 < read[0] < 0.5 * scanned[0], "the resumed pass read the staged part again"
    assert_same_dataset(merged(tmp_path / "a", whole), merged(tmp_path / "b", resumed))
    verify_dataset(tmp_path / "b", [rec])
