"""One-pass conversions (a single read, overlapping a remote download) equal two-pass ones."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from mcap.writer import Writer
from tests._servers import S3Bucket, moto_server, s3_bucket
from tests.roboflow_pipeline.test_convert import make_config, verify_dataset
from tests.roboflow_pipeline.test_convert_s3 import SUFFIX, assert_same_dataset, upload

import roboflow_dataset.convert._recording as recording
from roboflow_dataset.convert import convert_recording
from roboflow_dataset.sources import StreamedRecording
from roboflow_dataset.sources._mcap import McapStorage
from roboflow_dataset.synth import JOINT_TOPIC, SynthFormat, write_recording
from roboflow_pipeline import convert
from roboflow_storage import Spool, Storage

__all__ = ["moto_server", "s3_bucket"]

ONE_PASS_FORMATS: list[SynthFormat] = ["mcap", "ros1", "ros2-mcap"]


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[StreamedRecording | None]:
    """What each conversion's ``open_streamed`` gave (``None``: no one-pass read)."""
    seen: list[StreamedRecording | None] = []
    real = recording.open_streamed

    def spy(
        path: str | Path, *, salvage: bool = False, spool: Spool | None = None
    ) -> StreamedRecording | None:
        seen.append(real(path, salvage=salvage, spool=spool))
        return seen[-1]

    monkeypatch.setattr(recording, "open_streamed", spy)
    return seen


def _two_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recording, "open_streamed", lambda _path, **_: None)


@pytest.mark.parametrize("fmt", ONE_PASS_FORMATS)
def test_one_pass_gives_the_two_pass_dataset(
    tmp_path: Path, fmt: SynthFormat, opened: list[StreamedRecording | None], caplog: pytest.LogCaptureFixture
) -> None:
    rec = write_recording(
        tmp_path / f"rec{SUFFIX.get(fmt, '')}", fmt, duration_s=1.5, jitter_ms=3.0, drop_frames=(4, 9), seed=5
    )
    config = make_config(rec.cameras)
    caplog.set_level(logging.INFO, logger="roboflow.convert")
    one = convert([rec.path], config, tmp_path / "one")
    assert len(opened) == 1 and opened[0] is not None
    assert "two passes" not in caplog.text
    with pytest.MonkeyPatch.context() as patch:
        _two_passes(patch)
        two = convert([rec.path], config, tmp_path / "two")
    assert one.frames == two.frames > 0
    assert one.input_bytes == two.input_bytes
    verify_dataset(tmp_path / "one", [rec])
    assert_same_dataset(tmp_path / "one", tmp_path / "two")


def test_db3_and_split_bags_take_two_passes(tmp_path: Path, opened: list[StreamedRecording | None]) -> None:
    rec = write_recording(tmp_path / "bag", "ros2-db3", duration_s=0.5)
    convert([rec.path], make_config(rec.cameras), tmp_path / "out")
    assert opened == [None]
    verify_dataset(tmp_path / "out", [rec])


def _swap_late_joint_messages(src: Path, dst: Path) -> None:
    """Rewrite an MCAP with two joint messages near the end swapped in file order (log time
    goes backwards there, as in a recorder that buffered one message)."""
    storage = McapStorage(src)
    records = list(storage.read(None, None))
    joints = [i for i, r in enumerate(records) if r[1].topic == JOINT_TOPIC]
    a, b = joints[-5], joints[-4]
    records[a], records[b] = records[b], records[a]
    with dst.open("wb") as out:
        writer = Writer(out)
        writer.start(profile="ros2")
        ids: dict[str, int] = {}
        for channel in storage.channels:
            schema = writer.register_schema(channel.msgtype, channel.schema_encoding, channel.schema)
            ids[channel.topic] = writer.register_channel(channel.topic, channel.encoding, schema)
        for log_time, channel, data in records:
            writer.add_message(ids[channel.topic], log_time=log_time, data=data, publish_time=log_time)
        writer.finish()
    storage.close()


def test_messages_out_of_order_fall_back_to_two_passes_and_take_back_progress(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rec = write_recording(tmp_path / "rec.mcap", "mcap", duration_s=1.5, seed=2)
    swapped = tmp_path / "swapped.mcap"
    _swap_late_joint_messages(Path(rec.path), swapped)
    config = make_config(rec.cameras)
    reported: list[int] = []
    caplog.set_level(logging.INFO, logger="roboflow.convert")

    staged = convert_recording(swapped, config, tmp_path / "stage", on_frames=reported.append)

    assert "converting with two passes" in caplog.text and "log time" in caplog.text
    assert any(n < 0 for n in reported), "the one pass had reported frames before it gave up"
    assert sum(reported) == staged.length > 0
    # readers sort by log time, so the swap changes nothing in the dataset
    convert([swapped], config, tmp_path / "swapped")
    verify_dataset(tmp_path / "swapped", [rec])


@pytest.mark.object_store
@pytest.mark.parametrize("fmt", ONE_PASS_FORMATS)
def test_one_pass_converts_a_remote_recording_as_a_local_one(
    tmp_path: Path, s3_bucket: S3Bucket, fmt: SynthFormat, opened: list[StreamedRecording | None]
) -> None:
    rec = write_recording(tmp_path / f"rec{SUFFIX.get(fmt, '')}", fmt, duration_s=1.0, seed=4)
    name = Path(rec.path).name
    upload(
        Path(rec.path), Storage.from_url(s3_bucket.url()), "in" if Path(rec.path).is_file() else f"in/{name}"
    )
    config = make_config(rec.cameras)
    remote = convert([s3_bucket.url(f"in/{name}")], config, tmp_path / "remote")
    local = convert([rec.path], config, tmp_path / "local")
    streamed = opened[0]
    assert streamed is not None and str(streamed.path).startswith("s3://")  # read from a GrowingCopy
    assert remote.input_bytes == local.input_bytes
    verify_dataset(tmp_path / "remote", [rec])
    assert_same_dataset(tmp_path / "remote", tmp_path / "local")
