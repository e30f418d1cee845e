"""Crafted recordings that attack the readers (tens of KB each): decompression bombs, huge declared
lengths, bogus log times, far-apart topics, a giant PNG, a recursive view in a ``.db3``.

Each is written the way the attack needs (byte by byte where a writer would refuse), with the
ROS types and topics of :mod:`roboflow_dataset.synth`, so :data:`HOSTILE_CONFIG` maps them.
"""

from __future__ import annotations

import base64
import sqlite3
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import zstandard
from mcap.data_stream import RecordBuilder
from mcap.records import Channel, Chunk, ChunkIndex, DataEnd, Footer, Header, Message, Schema

from roboflow_dataset._synth_writers import SynthWriter, open_writer
from roboflow_dataset.synth import ACTION_TOPIC, JOINT_TOPIC, write_recording

__all__ = [
    "BZ2_BOMB_BYTES",
    "HOSTILE_CONFIG",
    "db3_recursive_view",
    "huge_png",
    "mcap_far_apart",
    "mcap_huge_png",
    "mcap_huge_record",
    "mcap_max_log_time",
    "mcap_never_overlap",
    "mcap_without_joints",
    "mcap_zstd_bomb",
    "ros1_bz2_bomb",
]

HOSTILE_CONFIG = f"""
[dataset]
name = "hostile"
fps = 30

[[mappings]]
topic = "/cam"
feature = "observation.images.cam"
mapping_type = "image"
required = false

[[mappings]]
topic = "{JOINT_TOPIC}"
feature = "observation.state"

[[mappings]]
topic = "{ACTION_TOPIC}"
feature = "action"
mapping_type = "action"
required = false

[video]
codec = "libx264"
"""

MCAP_MAGIC = b"\x89MCAP0\r\n"
BZ2_BOMB_BYTES = 2 << 30
# bz2.compress(bytes(2 << 30), 9): 1522 bytes that expand to 2 GiB of zeros (50 s to make, so kept).
_BZ2_BOMB = base64.b64decode(
    "QlpoOTFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkm"
    "U1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFf"
    "jkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAgg"
    "ADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAl"
    "qQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkm"
    "U1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFf"
    "jkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAgg"
    "ADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAl"
    "qQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkm"
    "U1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFf"
    "jkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAgg"
    "ADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAl"
    "qQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkm"
    "U1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFf"
    "jkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAgg"
    "ADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAl"
    "qQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkm"
    "U1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFf"
    "jkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAgg"
    "ADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAl"
    "qQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZgLDoDAEUpUCAwAAABAAIIAAwzAUppkiRIbFIkSHi"
    "7kinChIbc2UzQA=="
)
_U32 = struct.Struct("<I")


# --- ROS1 ---------------------------------------------------------------------------------------


def _fields(fields: dict[str, bytes]) -> bytes:
    return b"".join(_U32.pack(len(k) + 1 + len(v)) + k.encode() + b"=" + v for k, v in fields.items())


def _record(fields: dict[str, bytes], data: bytes) -> bytes:
    header = _fields(fields)
    return _U32.pack(len(header)) + header + _U32.pack(len(data)) + data


def ros1_bz2_bomb(path: Path, declared: int) -> Path:
    """An indexed ROS1 bag (joint states and actions) of one bz2 chunk, declaring ``declared``
    bytes, that expands to 2 GiB."""
    magic = b"#ROSBAG V2.0\n"
    u32, u64 = _U32.pack, struct.Struct("<Q").pack
    topics = {
        JOINT_TOPIC: (b"sensor_msgs/JointState", b"Header header\nstring[] name\nfloat64[] position\n"),
        ACTION_TOPIC: (b"std_msgs/Float32MultiArray", b"float32[] data\n"),
    }
    connections = b"".join(
        _record(
            {"op": b"\x07", "conn": u32(conn), "topic": topic.encode()},
            _fields({"topic": topic.encode(), "type": kind, "md5sum": b"*", "message_definition": text}),
        )
        for conn, (topic, (kind, text)) in enumerate(topics.items())
    )
    counts = {"conn_count": u32(len(topics)), "chunk_count": u32(1)}
    header_len = len(_record({"op": b"\x03", "index_pos": u64(0), **counts}, b""))
    chunk_pos = len(magic) + header_len + 4000
    chunk = _record({"op": b"\x05", "compression": b"bz2", "size": u32(declared)}, _BZ2_BOMB)
    index = b"".join(
        _record({"op": b"\x04", "ver": u32(1), "conn": u32(conn), "count": u32(1)}, u32(1) + u32(0) + u32(0))
        for conn in range(len(topics))
    )
    index_pos = chunk_pos + len(chunk) + len(index)
    info = _record(
        {
            "op": b"\x06",
            "ver": u32(1),
            "chunk_pos": u64(chunk_pos),
            "start_time": u32(1) + u32(0),
            "end_time": u32(1) + u32(0),
            "count": u32(len(topics)),
        },
        b"".join(u32(conn) + u32(1) for conn in range(len(topics))),
    )
    bag_header = _record({"op": b"\x03", "index_pos": u64(index_pos), **counts}, b" " * 4000)
    path.write_bytes(magic + bag_header + chunk + index + connections + info)
    return path


# --- MCAP ---------------------------------------------------------------------------------------


def _mcap_records(*records: object) -> bytes:
    builder = RecordBuilder()
    for record in records:
        record.write(builder)  # type: ignore[attr-defined]
    return bytes(builder.end())


_JOINT_SCHEMA = Schema(id=1, name="sensor_msgs/msg/JointState", encoding="ros2msg", data=b"")
_JOINT_CHANNEL = Channel(id=1, schema_id=1, topic=JOINT_TOPIC, message_encoding="cdr", metadata={})
_ACTION_SCHEMA = Schema(id=2, name="std_msgs/msg/Float32MultiArray", encoding="ros2msg", data=b"")
_ACTION_CHANNEL = Channel(id=2, schema_id=2, topic=ACTION_TOPIC, message_encoding="cdr", metadata={})


def mcap_zstd_bomb(path: Path, *, indexed: bool) -> Path:
    """An MCAP whose zstd chunk claims ``uncompressed_size`` 2^40 in a frame without its content
    size (so a decoder cannot learn the real size up front); with ``indexed``, a summary whose
    chunk index points at it (the seeking read)."""
    inner = _mcap_records(
        _JOINT_SCHEMA,
        _JOINT_CHANNEL,
        Message(channel_id=1, sequence=0, log_time=1, publish_time=1, data=b"\x00" * 64),
    )
    data = zstandard.ZstdCompressor(write_content_size=False).compress(inner * 64)
    chunk = Chunk(
        compression="zstd",
        data=data,
        message_start_time=1,
        message_end_time=1,
        uncompressed_crc=0,
        uncompressed_size=1 << 40,
    )
    head = MCAP_MAGIC + _mcap_records(Header(profile="ros2", library="hostile"))
    body = _mcap_records(chunk)
    summary = b""
    if indexed:
        index = ChunkIndex(
            chunk_length=len(body),
            chunk_start_offset=len(head),
            compression="zstd",
            compressed_size=len(data),
            message_end_time=1,
            message_index_length=0,
            message_index_offsets={},
            message_start_time=1,
            uncompressed_size=1 << 40,
        )
        summary = _mcap_records(_JOINT_SCHEMA, _JOINT_CHANNEL, _ACTION_SCHEMA, _ACTION_CHANNEL, index)
    data_end = _mcap_records(DataEnd(data_section_crc=0))
    summary_start = len(head) + len(body) + len(data_end) if indexed else 0
    footer = _mcap_records(Footer(summary_start=summary_start, summary_offset_start=0, summary_crc=0))
    path.write_bytes(head + body + data_end + summary + footer + MCAP_MAGIC)
    return path


def mcap_huge_record(path: Path) -> Path:
    """An MCAP whose second record declares a length of 2^63 bytes."""
    head = MCAP_MAGIC + _mcap_records(Header(profile="ros2", library="hostile"))
    tail = _mcap_records(
        DataEnd(data_section_crc=0), Footer(summary_start=0, summary_offset_start=0, summary_crc=0)
    )
    path.write_bytes(head + struct.pack("<BQ", 0x05, 1 << 63) + b"\x00" * 64 + tail + MCAP_MAGIC)
    return path


def _robot(
    writer: SynthWriter, times_ns: Iterable[int], action_times_ns: Iterable[int] | None = None
) -> None:
    """Joint states at ``times_ns`` and actions at ``action_times_ns`` (default: the same times;
    header stamps equal the log times)."""
    types = writer.store.types
    joints = writer.add(JOINT_TOPIC, "sensor_msgs/msg/JointState")
    action = writer.add(ACTION_TOPIC, "std_msgs/msg/Float32MultiArray")
    layout = types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    zero = np.zeros(1)
    times = list(times_ns)
    for t in times:
        sec = min(t // 10**9, (1 << 31) - 1)
        stamp = types["builtin_interfaces/msg/Time"](sec=sec, nanosec=t % 10**9)
        header = types["std_msgs/msg/Header"](stamp=stamp, frame_id="base")
        writer.write(
            joints,
            t,
            types["sensor_msgs/msg/JointState"](
                header=header, name=["j"], position=zero, velocity=zero, effort=zero
            ),
        )
    for t in times if action_times_ns is None else action_times_ns:
        writer.write(
            action, t, types["std_msgs/msg/Float32MultiArray"](layout=layout, data=zero.astype(np.float32))
        )


def mcap_never_overlap(path: Path) -> Path:
    """Joint states from 1 s to 2 s, actions from 5 s to 6 s: no episode window."""
    writer = open_writer(path, "mcap")
    _robot(writer, [10**9 + i * 10**8 for i in range(10)], [5 * 10**9 + i * 10**8 for i in range(10)])
    writer.close()
    return path


def mcap_without_joints(path: Path) -> Path:
    """Actions only: the mapped joint states are missing."""
    writer = open_writer(path, "mcap")
    _robot(writer, [], [10**9 + i * 10**8 for i in range(10)])
    writer.close()
    return path


def mcap_max_log_time(path: Path) -> Path:
    """Robot messages for 1 s, then one whose log time is 2^64-1 (a uint64 MCAP allows it)."""
    writer = open_writer(path, "mcap")
    _robot(writer, [10**9 + i * 10**8 for i in range(10)] + [(1 << 64) - 1])
    writer.close()
    return path


def mcap_far_apart(path: Path) -> Path:
    """Both mapped topics have a message at 1 s and one 10^9 s later (timestamps a recorder would
    never write, that would make a 30-billion-frame episode)."""
    writer = open_writer(path, "mcap")
    _robot(writer, [10**9, 10**18 + 10**9])
    writer.close()
    return path


def huge_png(width: int, height: int) -> bytes:
    """A valid black RGB PNG of ``width`` x ``height`` (zlib of zero rows: small however large)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    compressor = zlib.compressobj(9)
    row = bytes(width * 3 + 1)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def mcap_huge_png(path: Path, width: int, height: int) -> Path:
    """Robot messages for 1 s, and a camera whose frames are one ``width`` x ``height`` PNG."""
    writer = open_writer(path, "mcap")
    types = writer.store.types
    cam = writer.add("/cam", "sensor_msgs/msg/CompressedImage")
    png = np.frombuffer(huge_png(width, height), dtype=np.uint8)
    times = [10**9 + i * 10**8 for i in range(3)]
    for t in times:
        stamp = types["builtin_interfaces/msg/Time"](sec=t // 10**9, nanosec=t % 10**9)
        header = types["std_msgs/msg/Header"](stamp=stamp, frame_id="cam")
        writer.write(cam, t, types["sensor_msgs/msg/CompressedImage"](header=header, format="png", data=png))
    _robot(writer, times)
    writer.close()
    return path


def db3_recursive_view(directory: Path) -> Path:
    """A rosbag2 ``.db3`` bag whose ``messages`` is a view over a recursive query that never ends."""
    write_recording(directory, "ros2-db3", duration_s=0.5, width=32, height=24, seed=2)
    db3 = next(directory.glob("*.db3"))
    db = sqlite3.connect(db3)
    with db:
        db.execute("ALTER TABLE messages RENAME TO real_messages")
        db.execute(
            "CREATE VIEW messages(id, topic_id, timestamp, data) AS "
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
            "SELECT i, 1, i, x'00' FROM n"
        )
    db.close()
    return directory
