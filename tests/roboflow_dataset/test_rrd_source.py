"""Rerun .rrd recordings as a source: entities, timelines, row values, order, errors, memory.

Every recording here is written with rerun-sdk itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rerun as rr

from roboflow_core import ConfigError, CorruptRecordingError, SourceError
from roboflow_dataset import inspect_source
from roboflow_dataset.extract import VectorExtractor
from roboflow_dataset.sources import open_source
from roboflow_dataset.synth import (
    ACTION_TOPIC,
    JOINT_NAMES,
    JOINT_TOPIC,
    RecordingInfo,
    joint_state_at,
    make_image,
    read_marker,
    write_recording,
)
from roboflow_media import decode_yuv_image
from roboflow_storage import Storage

T0 = 1_700_000_000_000_000_000


def _synth(tmp_path: Path) -> RecordingInfo:
    return write_recording(
        tmp_path / "synth.rrd",
        "rrd",
        duration_s=1.0,
        cameras=("cam_high", "cam_low"),
        compressed=("cam_low",),
        joint_hz=100.0,
        action_hz=50.0,
        jitter_ms=3.0,
        drop_frames=(4,),
        seed=2,
    )


def _write(path: Path, log: Callable[[rr.RecordingStream], None]) -> Path:
    rec = rr.RecordingStream("roboflow-test", recording_id=path.stem)
    rec.set_log_time_enabled(False)
    rec.save(path)
    try:
        log(rec)
    finally:
        rec.disconnect()
    return path


def _at(rec: rr.RecordingStream, ns: int, timeline: str = "capture") -> None:
    rec.set_time(timeline, timestamp=np.datetime64(ns, "ns"))


def test_inspect_lists_entities_types_counts_and_rates(tmp_path: Path) -> None:
    rec = _synth(tmp_path)
    default, capture = inspect_source(rec.path), inspect_source(rec.path, timeline="capture")
    assert default["format"] == capture["format"] == "rrd"
    assert (default["timeline"], capture["timeline"]) == ("log_time", "capture")
    assert default["timelines"] == {"capture": "timestamp", "log_time": "timestamp"}
    topics = {t["topic"]: t for t in capture["topics"]}
    assert {t: (v["type"], v["count"]) for t, v in topics.items()} == {
        "/cam_high/image_raw": ("rerun.archetypes.Image", 29),
        "/cam_low/image_raw/compressed": ("rerun.archetypes.EncodedImage", 29),
        JOINT_TOPIC: ("rerun.archetypes.Scalars", 100),
        ACTION_TOPIC: ("rerun.archetypes.Scalars", 50),
    }
    assert topics[JOINT_TOPIC]["frequency_hz"] == pytest.approx(100, rel=0.02)
    assert topics[ACTION_TOPIC]["frequency_hz"] == pytest.approx(50, rel=0.02)
    assert topics["/cam_low/image_raw/compressed"]["frequency_hz"] == pytest.approx(30, rel=0.05)
    stamps = [m.header_stamp_ns or m.log_time_ns for ms in rec.messages.values() for m in ms]
    assert (capture["start_ns"], capture["end_ns"]) == (min(stamps), max(stamps))
    logs = [m.log_time_ns for ms in rec.messages.values() for m in ms]
    assert (default["start_ns"], default["end_ns"]) == (min(logs), max(logs))
    assert default["message_count"] == capture["message_count"] == 208


def test_cli_inspect_shows_the_timeline_and_entities(tmp_path: Path) -> None:
    rec = _synth(tmp_path)
    cli = Path(sys.executable).parent / "roboflow"
    out = subprocess.run([str(cli), "inspect", str(rec.path)], capture_output=True, text=True, check=True)
    assert "format:    rrd" in out.stdout
    assert "timeline:  log_time (of: capture (timestamp), log_time (timestamp))" in out.stdout
    assert "/cam_low/image_raw/compressed  rerun.archetypes.EncodedImage" in out.stdout
    as_json = subprocess.run(
        [str(cli), "inspect", str(rec.path), "--json", "--timeline", "capture"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(as_json.stdout)["timeline"] == "capture"


def test_messages_come_in_time_order_with_the_logged_values(tmp_path: Path) -> None:
    rec = _synth(tmp_path)
    with open_source(rec.path, timeline="capture") as source:
        messages = list(source.messages())
        times = [m.log_time_ns for m in messages]
        assert times == sorted(times) and len(messages) == 208
        by_topic: dict[str, list[int]] = {}
        for m in messages:
            by_topic.setdefault(m.topic, []).append(m.log_time_ns)
        for topic, written in rec.messages.items():
            assert by_topic[topic] == [w.header_stamp_ns or w.log_time_ns for w in written]
        cam = [m for m in messages if m.topic == "/cam_high/image_raw"]
        written = rec.messages["/cam_high/image_raw"]
        assert [read_marker(m.decode()) for m in cam] == [w.index for w in written]
        assert np.array_equal(
            cam[3].decode(), make_image(written[3].index, "cam_high", rec.width, rec.height)
        )
        jpeg = [m.decode() for m in messages if m.topic.endswith("compressed")]
        assert [read_marker(p) for p in jpeg] == [
            w.index for w in rec.messages["/cam_low/image_raw/compressed"]
        ]
        joints = [m for m in messages if m.topic == JOINT_TOPIC]
        extractor = VectorExtractor(JOINT_TOPIC, joints[0].msgtype, None, None)
        np.testing.assert_allclose(extractor.from_message(joints[7]), joint_state_at(7 / 100.0)[0], rtol=1e-6)
        assert extractor.names == JOINT_NAMES  # from the static SeriesLines names
        # reading from a time on gives exactly the rest
        middle = times[100]
        assert [(m.topic, m.log_time_ns) for m in source.messages(start_ns=middle)] == [
            (m.topic, m.log_time_ns) for m in messages if m.log_time_ns >= middle
        ]
        assert [m.topic for m in source.messages([ACTION_TOPIC])] == [ACTION_TOPIC] * 50


def test_a_whole_entity_in_one_chunk_merges_in_time_order(tmp_path: Path) -> None:
    def log(rec: rr.RecordingStream) -> None:
        for i in range(0, 40, 2):
            _at(rec, T0 + i * 10**7)
            rec.log("/rowwise", rr.Scalars([i]))
        # one chunk with the entity's whole history, sent after everything else, out of order
        times = T0 + np.array([25, 5, 15, 35, 0], dtype=np.int64) * 10**7
        rec.send_columns(
            "/columns",
            indexes=[rr.TimeColumn("capture", timestamp=times.astype("datetime64[ns]"))],
            columns=rr.Scalars.columns(scalars=[25, 5, 15, 35, 0]),
        )

    path = _write(tmp_path / "c.rrd", log)
    with open_source(path) as source:
        assert source.timeline.name == "capture"  # no log_time: the only time timeline
        rows = [(m.log_time_ns, m.topic, float(m.decode()["scalars"][0])) for m in source.messages()]
    assert [t for t, _, _ in rows] == sorted(t for t, _, _ in rows)
    assert [v for _, topic, v in rows if topic == "/columns"] == [0, 5, 15, 25, 35]
    assert [(t - T0) // 10**7 for t, _, v in rows] == [int(v) for _, _, v in rows]


def test_image_formats_static_components_tensors_and_any_values(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    mono16 = rng.integers(0, 65536, (4, 6), dtype=np.uint16)
    depth = rng.random((4, 6), dtype=np.float32)
    nv12 = rng.integers(16, 236, 4 * 6 * 3 // 2, dtype=np.uint8)

    def log(rec: rr.RecordingStream) -> None:
        fmt = rr.components.ImageFormat(width=6, height=4, color_model="BGR", channel_datatype="U8")
        rec.log("/send_columns", rr.Image.from_fields(format=fmt), static=True)
        _at(rec, T0)
        rec.log("/bgr", rr.Image(rgb[..., ::-1], color_model="BGR"))
        rec.log("/rgba", rr.Image(np.concatenate([rgb, rgb[..., :1]], axis=-1), color_model="RGBA"))
        rec.log("/mono16", rr.Image(mono16, color_model="L"))
        rec.log("/nv12", rr.Image(bytes=nv12.tobytes(), width=6, height=4, pixel_format=rr.PixelFormat.NV12))
        rec.log("/depth", rr.DepthImage(depth))
        rec.log("/depth_tenth_mm", rr.DepthImage(mono16, meter=10000.0))
        rec.log("/tensor", rr.Tensor(np.arange(6, dtype=np.int16).reshape(2, 3)))
        rec.log("/gripper", rr.AnyValues(opening=0.25, closed=False))
        rec.send_columns(
            "/send_columns",
            indexes=[rr.TimeColumn("capture", timestamp=np.array([T0], dtype="datetime64[ns]"))],
            columns=rr.Image.columns(buffer=[rgb[..., ::-1].reshape(-1)]),
        )

    path = _write(tmp_path / "formats.rrd", log)
    with open_source(path) as source:
        types = source.topic_types()
        values = {m.topic: m.decode() for m in source.messages()}
    assert types["/depth"] == "rerun.archetypes.DepthImage" and types["/gripper"] == "AnyValues"
    assert np.array_equal(values["/bgr"], rgb) and np.array_equal(values["/rgba"], rgb)
    assert np.array_equal(values["/send_columns"], rgb)  # its format is the entity's static one
    assert values["/mono16"].dtype == np.uint16 and np.array_equal(values["/mono16"][..., 0], mono16)
    assert values["/depth"].dtype == np.float32 and np.array_equal(values["/depth"][..., 0], depth)
    tenth_mm = values["/depth_tenth_mm"]  # another unit than millimetres: float metres
    assert tenth_mm.dtype == np.float32
    np.testing.assert_allclose(tenth_mm[..., 0], mono16 / 10000.0, rtol=1e-6)
    expected_nv12 = decode_yuv_image(nv12, height=4, width=6, layout="nv12", full_range=False)
    assert np.array_equal(values["/nv12"], expected_nv12)
    assert values["/tensor"]["data"].tolist() == [0, 1, 2, 3, 4, 5]
    assert values["/gripper"]["opening"].tolist() == [0.25]
    vector = VectorExtractor("/gripper", "AnyValues", ("opening", "closed"), None)
    assert vector(values["/gripper"]).tolist() == [0.25, 0.0]


def test_a_sequence_timeline_needs_a_rate(tmp_path: Path) -> None:
    def log(rec: rr.RecordingStream) -> None:
        for i in range(5):
            rec.set_time("frame", sequence=i)
            rec.log("/x", rr.Scalars([i]))

    path = _write(tmp_path / "seq.rrd", log)
    with pytest.raises(SourceError, match=r"timeline 'frame' is a sequence .*timeline_rate_hz") as caught:
        open_source(path, timeline="frame")
    assert caught.value.context["path"] == str(path)
    with pytest.raises(SourceError, match=r"no log_time timeline.*frame \(sequence\)"):
        open_source(path)
    with open_source(path, timeline="frame", timeline_rate_hz=20.0) as source:
        assert [m.log_time_ns for m in source.messages()] == [
            0,
            50_000_000,
            100_000_000,
            150_000_000,
            200_000_000,
        ]


def test_truncated_and_foreign_files_name_the_file(tmp_path: Path) -> None:
    whole = _synth(tmp_path).path
    truncated = tmp_path / "truncated.rrd"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    with pytest.raises(CorruptRecordingError, match="truncated") as caught:
        open_source(truncated)
    assert caught.value.context["path"] == str(truncated)
    foreign = tmp_path / "foreign.rrd"
    foreign.write_bytes(b"RRF2" + bytes(range(200)))
    with pytest.raises(CorruptRecordingError, match=r"cannot open the \.rrd file") as caught:
        open_source(foreign)
    assert caught.value.context["path"] == str(foreign)


@pytest.mark.parametrize("value", ["lots", "0", "-5", "1.5"])
def test_a_bad_max_held_bytes_is_a_config_error_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    path = _synth(tmp_path).path
    monkeypatch.setenv("ROBOFLOW_RRD_MAX_HELD_BYTES", value)
    with pytest.raises(ConfigError, match="ROBOFLOW_RRD_MAX_HELD_BYTES") as caught:
        open_source(path, timeline="capture")
    assert caught.value.context["key"] == "ROBOFLOW_RRD_MAX_HELD_BYTES" and repr(value) in str(caught.value)
    monkeypatch.setenv("ROBOFLOW_RRD_MAX_HELD_BYTES", str(1 << 20))
    with open_source(path, timeline="capture") as source:
        assert next(iter(source.messages())).topic


def test_without_rerun_sdk_the_error_says_how_to_install_it(tmp_path: Path) -> None:
    path = _synth(tmp_path).path
    script = (
        "import sys; sys.modules['rerun'] = None\n"  # what an environment without rerun-sdk sees
        "from roboflow_dataset.sources import open_source\n"
        f"open_source({str(path)!r})\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert out.returncode == 1
    assert "SourceError" in out.stderr and str(path) in out.stderr
    assert "pip install 'roboflow-dataset[rerun]'" in out.stderr


_MEMORY_SCRIPT = """
import sys
from roboflow_dataset.sources import open_source
def peak_kb():  # VmHWM: ru_maxrss would start from the parent's (pytest's) peak after vfork+exec
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
with open_source(sys.argv[1]) as source:
    list(source.topics())
    base = peak_kb()
    pixels, times = 0, []
    for message in source.messages():
        times.append(message.log_time_ns)
        if message.topic == "/camera":
            pixels += message.decode().nbytes
print(pixels, (peak_kb() - base) * 1024, int(times == sorted(times)))
"""


@pytest.mark.parametrize("layout", ["as-logged", "one-entity-after-the-other"])
def test_a_recording_larger_than_what_is_held_streams_chunk_by_chunk(tmp_path: Path, layout: str) -> None:
    frames, height, width = 200, 480, 640

    def log(rec: rr.RecordingStream) -> None:
        for i in range(frames):  # flat frames: a small file that decodes to 184 MB
            _at(rec, T0 + i * 33_000_000)
            rec.log("/camera", rr.Image(np.full((height, width, 3), i % 256, np.uint8)))
            if layout == "as-logged":
                rec.log("/joints", rr.Scalars([i]))
        if layout != "as-logged":  # the joints after every image, as a merge of two files lays them out
            rec.flush()
            for i in range(frames):
                _at(rec, T0 + i * 33_000_000)
                rec.log("/joints", rr.Scalars([i]))

    path = _write(tmp_path / "big.rrd", log)
    env = {**os.environ, "ROBOFLOW_RRD_MAX_HELD_BYTES": str(64 << 20)}
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(path)], capture_output=True, text=True, check=True, env=env
    )
    pixels, grown, ordered = map(int, out.stdout.split())
    assert pixels == frames * height * width * 3 and ordered
    assert grown < pixels / 4, f"peak memory grew by {grown / 1e6:.0f} MB reading {pixels / 1e6:.0f} MB"


def test_an_evicted_spool_copy_of_an_rrd_stays_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    buffer = tmp_path / "buffer"
    monkeypatch.setenv("ROBOFLOW_BUFFER_DIR", str(buffer))
    rec = _synth(tmp_path)
    root = f"memory://{uuid.uuid4().hex}"
    Storage.from_url(root).put("synth.rrd", rec.path.read_bytes())
    with open_source(f"{root}/synth.rrd", timeline="capture") as remote:
        assert remote.path == f"{root}/synth.rrd"
        copies = list(buffer.glob("roboflow-spool-*/*"))  # the process's private spool directory
        assert copies
        for copy in copies:
            copy.unlink()  # what the LRU buffer does to make room
        markers = [read_marker(m.decode()) for m in remote.messages(["/cam_high/image_raw"])]
    assert markers == [w.index for w in rec.messages["/cam_high/image_raw"]]


def test_a_starter_config_maps_rerun_cameras_and_loads(tmp_path: Path) -> None:
    from roboflow_core import loads_config
    from roboflow_dataset.starter import starter_config

    rec = _synth(tmp_path)
    config = loads_config(starter_config(rec.path))
    images = {m.topic for m in config.mappings if m.is_image}
    assert images == {"/cam_high/image_raw", "/cam_low/image_raw/compressed"}
    assert [m.topic for m in config.mappings if m.feature == "action"] == [ACTION_TOPIC]
