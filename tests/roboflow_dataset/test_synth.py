"""Synthetic recordings: every format reads back exactly what was written."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from PIL import Image as PILImage

from roboflow_dataset.sources import open_source
from roboflow_dataset.synth import (
    ACTION_TOPIC,
    JOINT_TOPIC,
    RecordingInfo,
    SynthFormat,
    action_at,
    camera_topic,
    joint_state_at,
    make_image,
    read_marker,
    write_recording,
)

FORMATS: list[SynthFormat] = ["mcap", "ros1", "ros2-db3", "ros2-mcap"]
SOURCE_FORMAT = {"mcap": "mcap", "ros1": "ros1", "ros2-db3": "ros2", "ros2-mcap": "ros2"}


def _write(tmp_path: Path, fmt: SynthFormat, **options: Any) -> RecordingInfo:
    return write_recording(tmp_path / f"rec-{fmt}", fmt, cameras=("cam_high", "cam_wrist"), **options)


def _read_back(info: RecordingInfo) -> dict[str, list[tuple[int | None, int, Any]]]:
    with open_source(info.path) as source:
        assert source.format == SOURCE_FORMAT[info.fmt]
        assert {t.topic: (t.msgtype, t.count) for t in source.topics()} == {
            topic: (info.msgtypes[topic], len(msgs)) for topic, msgs in info.messages.items()
        }
        read: dict[str, list[tuple[int | None, int, Any]]] = {topic: [] for topic in info.messages}
        for message in source.messages():
            read[message.topic].append((message.header_stamp_ns, message.log_time_ns, message.decode()))
    return read


@pytest.mark.parametrize("fmt", FORMATS)
def test_reads_back_what_was_written(tmp_path: Path, fmt: SynthFormat) -> None:
    info = _write(tmp_path, fmt, jitter_ms=3.0, drop_frames=(4, 5), duration_s=1.0)
    read = _read_back(info)
    for topic, written in info.messages.items():
        assert [(h, t) for h, t, _ in read[topic]] == [(m.header_stamp_ns, m.log_time_ns) for m in written]
    for camera in info.cameras:
        for msg, (_, _, image) in zip(
            info.messages[camera_topic(camera)], read[camera_topic(camera)], strict=True
        ):
            assert (image.encoding, image.width, image.height, image.step) == ("rgb8", 64, 48, 64 * 3)
            np.testing.assert_array_equal(
                image.data.reshape(48, 64, 3), make_image(msg.index, camera, 64, 48)
            )
    for msg, (_, _, state) in zip(info.messages[JOINT_TOPIC], read[JOINT_TOPIC], strict=True):
        np.testing.assert_array_equal(
            np.stack([state.position, state.velocity, state.effort]), joint_state_at(msg.index / 100.0)
        )
    for msg, (_, _, action) in zip(info.messages[ACTION_TOPIC], read[ACTION_TOPIC], strict=True):
        np.testing.assert_array_equal(action.data, action_at(msg.index / 100.0))


def test_same_content_in_every_format(tmp_path: Path) -> None:
    stamps = []
    for fmt in FORMATS:
        read = _read_back(_write(tmp_path, fmt, jitter_ms=1.0, seed=7))
        stamps.append({topic: [(h, t) for h, t, _ in msgs] for topic, msgs in read.items()})
    assert all(s == stamps[0] for s in stamps[1:])


def test_timeline_shape(tmp_path: Path) -> None:
    info = write_recording(
        tmp_path / "r.mcap", "mcap", duration_s=2.0, drop_frames=(3,), header_offset_ns=10**18
    )
    frames = info.messages["/cam_high/image_raw"]
    assert [m.index for m in frames] == [i for i in range(60) if i != 3]
    assert frames[0].header_stamp_ns == 10**18
    assert all(0 < m.log_time_ns - (m.header_stamp_ns or 0) < 3_000_000 for m in frames)
    assert len(info.messages[JOINT_TOPIC]) == 200
    assert all(m.header_stamp_ns is None for m in info.messages[ACTION_TOPIC])


@pytest.mark.parametrize("fmt", ["mcap", "ros2-db3"])
def test_compressed_images_carry_the_marker(tmp_path: Path, fmt: SynthFormat) -> None:
    info = write_recording(tmp_path / "r", fmt, compressed=True, width=96, height=64, duration_s=0.5)
    topic = camera_topic("cam_high", compressed=True)
    with open_source(info.path) as source:
        images = [m.decode() for m in source.messages([topic])]
    assert [img.format for img in images] == ["jpeg"] * 15
    decoded = [np.asarray(PILImage.open(io.BytesIO(img.data.tobytes()))) for img in images]
    assert [read_marker(frame) for frame in decoded] == [m.index for m in info.messages[topic]]


@pytest.mark.parametrize("index", [0, 1, 5, 1000, 2730, 4095])
@pytest.mark.parametrize(("width", "height"), [(64, 48), (640, 480), (13, 2)])
def test_marker_round_trip(index: int, width: int, height: int) -> None:
    image = make_image(index, "cam", width, height)
    assert image.shape == (height, width, 3)
    assert read_marker(image) == index
    noisy = np.clip(
        image.astype(np.int16) + np.random.default_rng(index).integers(-60, 60, image.shape), 0, 255
    )
    assert read_marker(noisy.astype(np.uint8)) == index
    assert read_marker(image[:, :, 0]) == index


def test_cameras_differ_below_the_marker() -> None:
    a, b = make_image(3, "cam_high", 64, 48), make_image(3, "cam_wrist", 64, 48)
    np.testing.assert_array_equal(a[:24], b[:24])
    assert not np.array_equal(a[24:], b[24:])


def test_bare_mcap_interoperates_with_mcap_ros2(tmp_path: Path) -> None:
    info = write_recording(tmp_path / "r.mcap", "mcap", duration_s=0.2)
    with info.path.open("rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        states = [decoded for _, c, _, decoded in reader.iter_decoded_messages() if c.topic == JOINT_TOPIC]
    assert list(states[1].position) == list(joint_state_at(0.01)[0])


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"fmt": "zip"}, "unknown synthetic format"),
        ({"width": 8}, "too small"),
    ],
)
def test_invalid_options(tmp_path: Path, options: dict[str, Any], match: str) -> None:
    arguments: dict[str, Any] = {"fmt": "mcap", **options}
    with pytest.raises(ValueError, match=match):
        write_recording(tmp_path / "r", **arguments)


def test_marker_wraps_around_for_long_recordings() -> None:
    from roboflow_dataset.synth import MARKER_BITS, make_image, read_marker

    assert read_marker(make_image(2**MARKER_BITS + 5, "cam", 64, 48)) == 5
