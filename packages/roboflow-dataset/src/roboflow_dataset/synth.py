"""Synthetic robot recordings for the demo, tests and benchmarks, in every supported format.

Topics of a recording:

- ``/<camera>/image_raw`` (``sensor_msgs/msg/Image``, rgb8) or ``/<camera>/image_raw/compressed``
  (``sensor_msgs/msg/CompressedImage``, JPEG) at ``camera_hz``; frame ``i`` is
  :func:`make_image` ``(i, camera, width, height)``, whose top half encodes ``i`` (:func:`read_marker`).
- ``/<camera>/depth/image_raw`` (``sensor_msgs/msg/Image``, ``16UC1`` millimetres or ``32FC1``
  metres with NaN for no measurement) or ``/<camera>/depth/image_raw/compressedDepth``
  (``sensor_msgs/msg/CompressedImage``, ``16UC1; compressedDepth png``) for each depth camera, at
  ``camera_hz``; frame ``i`` is :func:`make_depth` ``(i, camera, width, height)``.
- ``/joint_states`` (``sensor_msgs/msg/JointState``, 6 joints) at ``joint_hz``; message ``i``
  holds :func:`joint_state_at` ``(i / joint_hz)``.
- ``/action`` (``std_msgs/msg/Float32MultiArray``, no header, so consumers align it by log
  time) at ``action_hz`` (default ``joint_hz``); message ``i`` holds :func:`action_at`
  ``(i / action_hz)``.

Header stamps are ``header_offset_ns`` + nominal time + a deterministic jitter (seeded); log
times are the stamp plus a small positive latency (0.5-3 ms).

The ``rrd`` format (Rerun, written with rerun-sdk) has the same topics as entity paths: cameras
as ``Image`` (rgb8) or ``EncodedImage`` (the same JPEG bytes), joint positions and actions as
``Scalars`` (joints named by a static ``SeriesLines``), on two timelines: ``capture`` (the header
stamp, or the log time where the ROS message has no header) and ``log_time`` (the log time).
"""

from __future__ import annotations

import io
import math
import struct
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
from PIL import Image as PILImage

from roboflow_dataset._synth_content import (
    JOINT_NAMES,
    MARKER_BITS,
    action_at,
    joint_state_at,
    jpeg_bytes,
    make_depth,
    make_image,
    read_marker,
)
from roboflow_dataset._synth_rrd import write_rrd
from roboflow_dataset._synth_writers import SynthFormat, SynthWriter, open_writer

__all__ = [
    "ACTION_TOPIC",
    "JOINT_NAMES",
    "JOINT_TOPIC",
    "MARKER_BITS",
    "DepthEncoding",
    "RecordingInfo",
    "SynthFormat",
    "SynthMessage",
    "action_at",
    "camera_topic",
    "depth_topic",
    "joint_state_at",
    "jpeg_bytes",
    "make_depth",
    "make_image",
    "read_marker",
    "write_recording",
]

JOINT_TOPIC = "/joint_states"
ACTION_TOPIC = "/action"
_IMAGE = "sensor_msgs/msg/Image"
_COMPRESSED = "sensor_msgs/msg/CompressedImage"
_JOINT_STATE = "sensor_msgs/msg/JointState"
_ACTION = "std_msgs/msg/Float32MultiArray"


DepthEncoding = Literal["16UC1", "32FC1", "compressedDepth"]
_DEPTH_HEADER = struct.Struct("<iff")  # compressedDepth: format, depthQuantA, depthQuantB


class SynthMessage(msgspec.Struct, frozen=True, order=True):
    """One written message: its index on its topic, header stamp (``None`` without header), log time."""

    index: int
    header_stamp_ns: int | None
    log_time_ns: int


class RecordingInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`write_recording` wrote; payloads are reproducible from the message indices.

    Attributes:
        path: The recording (file, or directory for ``ros2-*``).
        fmt: Its format.
        cameras: Camera names.
        width: Image width.
        height: Image height.
        compressed: The cameras written as JPEG ``CompressedImage`` (the others are raw rgb8 ``Image``).
        drift: The cameras' colours drift over the recording (:func:`make_image`'s ``drift``).
        depth_cameras: Cameras with a depth topic.
        depth_encoding: How the depth topics are written.
        camera_hz: Camera rate.
        joint_hz: Joint state rate.
        action_hz: Action rate.
        msgtypes: Topic to message type.
        messages: Topic to its messages in index order (dropped frames are absent).
    """

    path: Path
    fmt: SynthFormat
    cameras: tuple[str, ...]
    width: int
    height: int
    compressed: tuple[str, ...]
    camera_hz: float
    joint_hz: float
    drift: bool
    depth_cameras: tuple[str, ...]
    depth_encoding: DepthEncoding
    action_hz: float
    msgtypes: dict[str, str]
    messages: dict[str, tuple[SynthMessage, ...]]

    def topic_of(self, camera: str) -> str:
        """The image topic of ``camera``."""
        return camera_topic(camera, camera in self.compressed)


def camera_topic(camera: str, compressed: bool = False) -> str:
    """The image topic of ``camera``."""
    return f"/{camera}/image_raw/compressed" if compressed else f"/{camera}/image_raw"


def depth_topic(camera: str, encoding: DepthEncoding = "16UC1") -> str:
    """The depth topic of ``camera``."""
    suffix = "/compressedDepth" if encoding == "compressedDepth" else ""
    return f"/{camera}/depth/image_raw{suffix}"


def _timeline(
    count: int, hz: float, *, offset_ns: int, jitter_ms: float, rng: np.random.Generator, header: bool
) -> list[SynthMessage]:
    index = np.arange(count)
    stamps = offset_ns + np.round(index * 1e9 / hz).astype(np.int64)
    stamps += np.round(rng.uniform(-jitter_ms, jitter_ms, count) * 1e6).astype(np.int64)
    logs = stamps + rng.integers(500_000, 3_000_000, count)
    return [
        SynthMessage(int(i), int(s) if header else None, int(t))
        for i, s, t in zip(index, stamps, logs, strict=True)
    ]


class _Messages:
    """Builds the rosbags message objects of one recording."""

    def __init__(self, writer: SynthWriter, info: RecordingInfo) -> None:
        self._types = writer.store.types
        self._ros1 = writer.ros1
        self._info = info

    def _header(self, stamp_ns: int, frame_id: str, seq: int) -> Any:
        stamp = self._types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
        if self._ros1:
            return self._types["std_msgs/msg/Header"](seq=seq, stamp=stamp, frame_id=frame_id)
        return self._types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def image(self, camera: str, msg: SynthMessage) -> Any:
        info = self._info
        last = info.messages[info.topic_of(camera)][-1].index
        drift = msg.index / max(last, 1) if info.drift else 0.0
        pixels = make_image(msg.index, camera, info.width, info.height, drift)
        header = self._header(msg.header_stamp_ns or 0, camera, msg.index)
        if camera in info.compressed:
            data = np.frombuffer(jpeg_bytes(pixels), dtype=np.uint8)
            return self._types[_COMPRESSED](header=header, format="jpeg", data=data)
        return self._types[_IMAGE](
            header=header,
            height=info.height,
            width=info.width,
            encoding="rgb8",
            is_bigendian=0,
            step=info.width * 3,
            data=pixels.reshape(-1),
        )

    def depth(self, camera: str, msg: SynthMessage) -> Any:
        info = self._info
        millimetres = make_depth(msg.index, camera, info.width, info.height)
        header = self._header(msg.header_stamp_ns or 0, f"{camera}_depth", msg.index)
        if info.depth_encoding == "compressedDepth":
            buffer = io.BytesIO()
            PILImage.fromarray(millimetres).save(buffer, format="PNG")
            data = np.frombuffer(_DEPTH_HEADER.pack(0, 0.0, 0.0) + buffer.getvalue(), dtype=np.uint8)
            return self._types[_COMPRESSED](header=header, format="16UC1; compressedDepth png", data=data)
        pixels: np.ndarray = millimetres
        if info.depth_encoding == "32FC1":
            pixels = np.where(millimetres == 0, np.float32(np.nan), millimetres / np.float32(1000))
            pixels = pixels.astype(np.float32)
        return self._types[_IMAGE](
            header=header,
            height=info.height,
            width=info.width,
            encoding=info.depth_encoding,
            is_bigendian=0,
            step=info.width * pixels.itemsize,
            data=pixels.view(np.uint8).reshape(-1),
        )

    def joint_state(self, msg: SynthMessage) -> Any:
        position, velocity, effort = joint_state_at(msg.index / self._info.joint_hz)
        header = self._header(msg.header_stamp_ns or 0, "base_link", msg.index)
        return self._types[_JOINT_STATE](
            header=header, name=list(JOINT_NAMES), position=position, velocity=velocity, effort=effort
        )

    def action(self, msg: SynthMessage) -> Any:
        dim = self._types["std_msgs/msg/MultiArrayDimension"](label="joints", size=len(JOINT_NAMES), stride=1)
        layout = self._types["std_msgs/msg/MultiArrayLayout"](dim=[dim], data_offset=0)
        return self._types[_ACTION](layout=layout, data=action_at(msg.index / self._info.action_hz))


def write_recording(
    path: str | Path,
    fmt: SynthFormat,
    *,
    duration_s: float = 2.0,
    cameras: tuple[str, ...] = ("cam_high",),
    width: int = 64,
    height: int = 48,
    camera_hz: float = 30.0,
    joint_hz: float = 100.0,
    action_hz: float | None = None,
    compressed: bool | tuple[str, ...] = False,
    drift: bool = False,
    depth_cameras: tuple[str, ...] = (),
    depth_encoding: DepthEncoding = "16UC1",
    jitter_ms: float = 0.0,
    drop_frames: tuple[int, ...] = (),
    seed: int = 0,
    header_offset_ns: int = 1_700_000_000_000_000_000,
) -> RecordingInfo:
    """Write a deterministic synthetic recording.

    Args:
        path: Output file (``mcap``, ``ros1``, ``rrd``) or bag directory (``ros2-db3``,
            ``ros2-mcap``); must not exist.
        fmt: ``"mcap"`` (bare MCAP, ros2 profile, cdr), ``"ros1"``, ``"ros2-db3"``, ``"ros2-mcap"``
            or ``"rrd"`` (Rerun; needs rerun-sdk).
        duration_s: Length; each topic has ``floor(duration_s * hz)`` messages.
        cameras: Camera names.
        width: Image width (at least 12 for the marker).
        height: Image height.
        camera_hz: Camera rate.
        joint_hz: Joint state rate.
        action_hz: Action rate (default: ``joint_hz``).
        compressed: Write JPEG ``CompressedImage`` instead of raw rgb8 ``Image`` (``True``: every
            camera; or the names of the cameras to compress).
        drift: Let the colour of every camera drift from its first frame to its last.
        depth_cameras: Cameras (of ``cameras`` or others) that also get a depth topic.
        depth_encoding: ``16UC1`` or ``32FC1`` raw ``Image``, or ``compressedDepth`` (16-bit PNG).
        jitter_ms: Header stamps deviate from nominal by up to this much (uniform, seeded).
        drop_frames: Camera frame indices to leave out (every camera).
        seed: Seed of jitter and latency.
        header_offset_ns: Stamp of the first nominal instant.

    Returns:
        What was written, per topic.

    Raises:
        ValueError: Unknown format, or images too small for the marker.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)

    def timeline(count: int, hz: float, header: bool) -> list[SynthMessage]:
        return _timeline(count, hz, offset_ns=header_offset_ns, jitter_ms=jitter_ms, rng=rng, header=header)

    action_hz = joint_hz if action_hz is None else action_hz
    jpeg = tuple(cameras) if compressed is True else tuple(c for c in cameras if c in (compressed or ()))
    frames = math.floor(duration_s * camera_hz + 1e-9)
    dropped = set(drop_frames)
    messages: dict[str, tuple[SynthMessage, ...]] = {}
    msgtypes: dict[str, str] = {}
    for camera in cameras:
        topic = camera_topic(camera, camera in jpeg)
        messages[topic] = tuple(m for m in timeline(frames, camera_hz, True) if m.index not in dropped)
        msgtypes[topic] = _COMPRESSED if camera in jpeg else _IMAGE
    for camera in depth_cameras:
        topic = depth_topic(camera, depth_encoding)
        messages[topic] = tuple(m for m in timeline(frames, camera_hz, True) if m.index not in dropped)
        msgtypes[topic] = _COMPRESSED if depth_encoding == "compressedDepth" else _IMAGE
    messages[JOINT_TOPIC] = tuple(timeline(math.floor(duration_s * joint_hz + 1e-9), joint_hz, True))
    messages[ACTION_TOPIC] = tuple(timeline(math.floor(duration_s * action_hz + 1e-9), action_hz, False))
    msgtypes |= {JOINT_TOPIC: _JOINT_STATE, ACTION_TOPIC: _ACTION}
    info = RecordingInfo(
        path=path,
        fmt=fmt,
        cameras=tuple(cameras),
        width=width,
        height=height,
        compressed=jpeg,
        camera_hz=camera_hz,
        joint_hz=joint_hz,
        drift=drift,
        depth_cameras=tuple(depth_cameras),
        depth_encoding=depth_encoding,
        action_hz=action_hz,
        msgtypes=msgtypes,
        messages=messages,
    )
    if fmt == "rrd":
        write_rrd(info, path, _events(info))
    else:
        _write(info, open_writer(path, fmt))
    return info


def _events(info: RecordingInfo) -> list[tuple[int, str, SynthMessage]]:
    """Every message in log-time order, as it is written."""
    return sorted((m.log_time_ns, topic, m) for topic, msgs in info.messages.items() for m in msgs)


def _write(info: RecordingInfo, writer: SynthWriter) -> None:
    build = _Messages(writer, info)
    handles = {topic: writer.add(topic, msgtype) for topic, msgtype in info.msgtypes.items()}
    cameras = {info.topic_of(c): c for c in info.cameras}
    depths = {depth_topic(c, info.depth_encoding): c for c in info.depth_cameras}
    try:
        for log_time, topic, msg in _events(info):
            if topic in cameras:
                message = build.image(cameras[topic], msg)
            elif topic in depths:
                message = build.depth(depths[topic], msg)
            else:
                message = build.joint_state(msg) if topic == JOINT_TOPIC else build.action(msg)
            writer.write(handles[topic], log_time, message)
    finally:
        writer.close()
