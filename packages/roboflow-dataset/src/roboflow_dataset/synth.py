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
  time) at ``joint_hz``; message ``i`` holds :func:`action_at` ``(i / joint_hz)``.

Header stamps are ``header_offset_ns`` + nominal time + a deterministic jitter (seeded); log
times are the stamp plus a small positive latency (0.5-3 ms).
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
    make_depth,
    make_image,
    read_marker,
)
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
        compressed: JPEG ``CompressedImage`` instead of raw rgb8 ``Image``.
        drift: The cameras' colours drift over the recording (:func:`make_image`'s ``drift``).
        depth_cameras: Cameras with a depth topic.
        depth_encoding: How the depth topics are written.
        camera_hz: Camera rate.
        joint_hz: Joint state and action rate.
        msgtypes: Topic to message type.
        messages: Topic to its messages in index order (dropped frames are absent).
    """

    path: Path
    fmt: SynthFormat
    cameras: tuple[str, ...]
    width: int
    height: int
    compressed: bool
    camera_hz: float
    joint_hz: float
    drift: bool
    depth_cameras: tuple[str, ...]
    depth_encoding: DepthEncoding
    msgtypes: dict[str, str]
    messages: dict[str, tuple[SynthMessage, ...]]


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
        last = info.messages[camera_topic(camera, info.compressed)][-1].index
        drift = msg.index / max(last, 1) if info.drift else 0.0
        pixels = make_image(msg.index, camera, info.width, info.height, drift)
        header = self._header(msg.header_stamp_ns or 0, camera, msg.index)
        if info.compressed:
            buffer = io.BytesIO()
            PILImage.fromarray(pixels).save(buffer, format="JPEG", quality=95)
            data = np.frombuffer(buffer.getvalue(), dtype=np.uint8)
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
        return self._types[_ACTION](layout=layout, data=action_at(msg.index / self._info.joint_hz))


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
    compressed: bool = False,
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
        path: Output file (``mcap``, ``ros1``) or bag directory (``ros2-db3``, ``ros2-mcap``); must not exist.
        fmt: ``"mcap"`` (bare MCAP, ros2 profile, cdr), ``"ros1"``, ``"ros2-db3"`` or ``"ros2-mcap"``.
        duration_s: Length; each topic has ``floor(duration_s * hz)`` messages.
        cameras: Camera names.
        width: Image width (at least 12 for the marker).
        height: Image height.
        camera_hz: Camera rate.
        joint_hz: Joint state and action rate.
        compressed: Write JPEG ``CompressedImage`` instead of raw rgb8 ``Image``.
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

    frames = math.floor(duration_s * camera_hz + 1e-9)
    joints = math.floor(duration_s * joint_hz + 1e-9)
    dropped = set(drop_frames)
    messages: dict[str, tuple[SynthMessage, ...]] = {}
    msgtypes: dict[str, str] = {}
    for camera in cameras:
        topic = camera_topic(camera, compressed)
        messages[topic] = tuple(m for m in timeline(frames, camera_hz, True) if m.index not in dropped)
        msgtypes[topic] = _COMPRESSED if compressed else _IMAGE
    for camera in depth_cameras:
        topic = depth_topic(camera, depth_encoding)
        messages[topic] = tuple(m for m in timeline(frames, camera_hz, True) if m.index not in dropped)
        msgtypes[topic] = _COMPRESSED if depth_encoding == "compressedDepth" else _IMAGE
    messages[JOINT_TOPIC] = tuple(timeline(joints, joint_hz, True))
    messages[ACTION_TOPIC] = tuple(timeline(joints, joint_hz, False))
    msgtypes |= {JOINT_TOPIC: _JOINT_STATE, ACTION_TOPIC: _ACTION}
    info = RecordingInfo(
        path=path,
        fmt=fmt,
        cameras=tuple(cameras),
        width=width,
        height=height,
        compressed=compressed,
        camera_hz=camera_hz,
        joint_hz=joint_hz,
        drift=drift,
        depth_cameras=tuple(depth_cameras),
        depth_encoding=depth_encoding,
        msgtypes=msgtypes,
        messages=messages,
    )
    _write(info, open_writer(path, fmt))
    return info


def _write(info: RecordingInfo, writer: SynthWriter) -> None:
    build = _Messages(writer, info)
    handles = {topic: writer.add(topic, msgtype) for topic, msgtype in info.msgtypes.items()}
    cameras = {camera_topic(c, info.compressed): c for c in info.cameras}
    depths = {depth_topic(c, info.depth_encoding): c for c in info.depth_cameras}
    events = sorted((m.log_time_ns, topic, m) for topic, msgs in info.messages.items() for m in msgs)
    try:
        for log_time, topic, msg in events:
            if topic in cameras:
                message = build.image(cameras[topic], msg)
            elif topic in depths:
                message = build.depth(depths[topic], msg)
            else:
                message = build.joint_state(msg) if topic == JOINT_TOPIC else build.action(msg)
            writer.write(handles[topic], log_time, message)
    finally:
        writer.close()
