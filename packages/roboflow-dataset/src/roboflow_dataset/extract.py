"""Turn decoded messages into dataset values: float32 vectors with names, and images.

Field paths select what a numeric feature takes from a message: ``"position"``,
``"pose.position.x"``, ``"data[2]"``. Without ``fields`` a well-known message type gets its usual
fields (JointState: ``position``; Pose: position and orientation; rerun Scalars: ``scalars``;
...); any other type needs them. Paths work on rosbags objects, protobuf messages, JSON dicts and
the component dicts of ``.rrd`` rows alike.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from roboflow_core import DecodeError, MediaError
from roboflow_core.buffers import BufferPool
from roboflow_dataset._image_wire import read_raw_image
from roboflow_media import decode_compressed_image, decode_raw_image

__all__ = [
    "IMAGE_TYPES",
    "ImageExtractor",
    "StampExtractor",
    "VectorExtractor",
    "default_fields",
    "normalize_msgtype",
]

_XYZ = ("x", "y", "z")
_XYZW = ("x", "y", "z", "w")


def _paths(prefix: str, names: Sequence[str]) -> tuple[str, ...]:
    return tuple(f"{prefix}.{n}" for n in names)


_POSE = _paths("position", _XYZ) + _paths("orientation", _XYZW)
_TWIST = _paths("linear", _XYZ) + _paths("angular", _XYZ)

_DEFAULT_FIELDS: dict[str, tuple[str, ...]] = {
    "sensor_msgs/JointState": ("position",),
    "geometry_msgs/Pose": _POSE,
    "geometry_msgs/PoseStamped": _paths("pose", _POSE),
    "geometry_msgs/PoseWithCovarianceStamped": _paths("pose.pose", _POSE),
    "geometry_msgs/Twist": _TWIST,
    "geometry_msgs/TwistStamped": _paths("twist", _TWIST),
    "geometry_msgs/Point": _XYZ,
    "geometry_msgs/Vector3": _XYZ,
    "geometry_msgs/Vector3Stamped": _paths("vector", _XYZ),
    "geometry_msgs/Quaternion": _XYZW,
    "geometry_msgs/Wrench": _paths("force", _XYZ) + _paths("torque", _XYZ),
    "geometry_msgs/WrenchStamped": _paths("wrench.force", _XYZ) + _paths("wrench.torque", _XYZ),
    "nav_msgs/Odometry": _paths("pose.pose", _POSE) + _paths("twist.twist", _TWIST),
    "sensor_msgs/Imu": _paths("orientation", _XYZW)
    + _paths("angular_velocity", _XYZ)
    + _paths("linear_acceleration", _XYZ),
    "rerun.archetypes.Scalars": ("scalars",),
    "rerun.archetypes.Tensor": ("data",),
}
_ELEMENT_NAMES = {"sensor_msgs/JointState": "name", "rerun.archetypes.Scalars": "names"}
_RAW_IMAGES = ("sensor_msgs/Image",)
_COMPRESSED_IMAGES = ("sensor_msgs/CompressedImage",)
_DECODED_IMAGES = ("rerun.archetypes.Image", "rerun.archetypes.EncodedImage", "rerun.archetypes.DepthImage")
IMAGE_TYPES = _RAW_IMAGES + _COMPRESSED_IMAGES + _DECODED_IMAGES
"""The message types an image mapping takes (normalized, see :func:`normalize_msgtype`)."""
_SCALAR_PREFIX = "std_msgs/"
_DECODED_KEPT, _DECODED_BYTES = 48, 128 << 20
"""Buffers an image topic keeps for its decoded images, and their bytes: more than a conversion
holds at once (the frames queued between the decoding thread, the encoder's queue and the encoder)."""
_STEP_RE = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def normalize_msgtype(msgtype: str) -> str:
    """``sensor_msgs/msg/JointState`` and ``sensor_msgs/JointState`` both become the latter."""
    return msgtype.replace("/msg/", "/")


def default_fields(msgtype: str) -> tuple[str, ...] | None:
    """The fields a numeric feature takes from ``msgtype`` when the config names none."""
    name = normalize_msgtype(msgtype)
    if name in _DEFAULT_FIELDS:
        return _DEFAULT_FIELDS[name]
    if name.startswith(_SCALAR_PREFIX):  # Float32, Float64MultiArray, Int32, Bool, ...
        return ("data",)
    return None


def _step(value: Any, name: str | None, index: int | None) -> Any:
    if name is not None:
        if isinstance(value, dict):
            return value[name]
        return getattr(value, name)
    assert index is not None
    return value[index]


@functools.lru_cache(maxsize=256)
def _steps(path: str) -> tuple[tuple[str, str | None, int | None], ...]:
    """The steps of a field path: each as written, and its name or index (parsed once a path)."""
    return tuple(
        (match.group(0), match.group(1), None if match.group(2) is None else int(match.group(2)))
        for match in _STEP_RE.finditer(path)
    )


def resolve_path(value: Any, path: str) -> Any:
    """Follow a field path (``a.b[2].c``) through attributes, dict keys and indices.

    Raises:
        KeyError: A step of the path does not exist.
    """
    for written, name, index in _steps(path):
        try:
            value = _step(value, name, index)
        except (AttributeError, KeyError, IndexError, TypeError) as err:
            raise KeyError(f"field path {path!r} does not exist in the message (at {written!r})") from err
    return value


def _as_vector(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        vector = value.astype(np.float32, copy=False)
        return vector if vector.ndim == 1 else vector.reshape(-1)
    if isinstance(value, bool | int | float | np.generic):
        return np.array([value], dtype=np.float32)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return np.asarray(value, dtype=np.float32).reshape(-1)
    raise TypeError(f"is a {type(value).__name__}, not a number or an array of numbers")


class VectorExtractor:
    """Extract one float32 vector per message from the configured field paths.

    The vector's length and names are fixed by the first message; a later message whose vector
    has another length is a :class:`DecodeError`.

    Args:
        topic: The topic, for error messages.
        msgtype: The topic's message type.
        fields: Field paths; ``None`` takes the type's defaults.
        names: Names of the vector's elements; ``None`` derives them (joint names, field paths).
    """

    def __init__(
        self, topic: str, msgtype: str, fields: Sequence[str] | None, names: Sequence[str] | None
    ) -> None:
        self.topic = topic
        self.msgtype = normalize_msgtype(msgtype)
        chosen = tuple(fields) if fields else default_fields(msgtype)
        if not chosen:
            raise DecodeError(
                f"no default fields for message type {msgtype}; set `fields` in this mapping "
                '(e.g. fields = ["data"])',
                topic=topic,
            )
        self.fields: tuple[str, ...] = chosen
        self._configured_names = tuple(names) if names else None
        self.names: tuple[str, ...] | None = self._configured_names

    def _derive_names(self, message: Any, parts: list[np.ndarray]) -> tuple[str, ...]:
        joint_names = None
        if self.msgtype in _ELEMENT_NAMES:  # JointState.name; the names a rerun series was given
            try:
                joint_names = [str(n) for n in resolve_path(message, _ELEMENT_NAMES[self.msgtype])]
            except KeyError:
                joint_names = None
        names: list[str] = []
        for path, part in zip(self.fields, parts, strict=True):
            if joint_names is not None and len(joint_names) == len(part):
                prefix = "" if len(self.fields) == 1 else f"{path}."
                names.extend(f"{prefix}{j}" for j in joint_names)
            elif len(part) == 1:
                names.append(path)
            else:
                names.extend(f"{path}[{i}]" for i in range(len(part)))
        return tuple(names)

    def from_message(self, message: Any) -> np.ndarray:
        """The vector of a source message (deserialized first)."""
        return self(message.decode())

    def __call__(self, message: Any) -> np.ndarray:
        """The message's vector (float32, 1-D)."""
        parts: list[np.ndarray] = []
        for path in self.fields:
            try:
                parts.append(_as_vector(resolve_path(message, path)))
            except (KeyError, TypeError, ValueError) as err:
                raise DecodeError(f"field {path!r} of {self.msgtype}: {err}", topic=self.topic) from err
        vector = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if self.names is None:
            self.names = self._derive_names(message, parts)
        if len(vector) != len(self.names):
            raise DecodeError(
                f"vector has {len(vector)} values but {len(self.names)} names "
                f"({', '.join(self.names[:8])}{', ...' if len(self.names) > 8 else ''}); "
                "every message of a topic must have the same length and `names` must match it",
                topic=self.topic,
            )
        return vector


class StampExtractor:
    """A ``timestamp`` mapping: the message's time in seconds (header stamp, else log time).

    Works on any message type: nothing is deserialized.
    """

    names: tuple[str, ...] = ("time_s",)

    def __init__(self, topic: str) -> None:
        self.topic = topic

    def from_message(self, message: Any) -> np.ndarray:
        """``[seconds]`` as float64."""
        stamp = message.header_stamp_ns or message.log_time_ns
        return np.array([stamp / 1e9], dtype=np.float64)


class ImageExtractor:
    """Decode a ``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage`` message to an HWC array
    (a ``.rrd`` row of an ``Image``, ``EncodedImage`` or ``DepthImage`` decodes to one itself).

    JPEGs are decoded into the buffers of earlier images once nothing refers to those any more
    (:class:`~roboflow_core.buffers.BufferPool`): one thread decodes with an extractor at a time.
    """

    def __init__(self, topic: str, msgtype: str) -> None:
        self.topic = topic
        name = normalize_msgtype(msgtype)
        if name not in IMAGE_TYPES:
            raise DecodeError(
                "an image mapping needs sensor_msgs/Image, sensor_msgs/CompressedImage or a rerun "
                f"Image, EncodedImage or DepthImage entity, not {msgtype}",
                topic=topic,
            )
        self.compressed = name in _COMPRESSED_IMAGES
        self.decoded = name in _DECODED_IMAGES
        self._buffers = BufferPool(_DECODED_KEPT, _DECODED_BYTES)

    def from_message(self, message: Any) -> np.ndarray:
        """Decode a source message (``.data``, ``.encoding``, ``.decode()``) to an image.

        Raw images in CDR or ROS1 wire format are read without deserializing (no pixel copy);
        anything else is deserialized first.
        """
        if self.decoded:
            pixels: np.ndarray = message.decode()
            return pixels
        if not self.compressed:
            try:
                raw = read_raw_image(message.data, message.encoding)
            except ValueError as err:
                raise DecodeError(f"malformed sensor_msgs/Image: {err}", topic=self.topic) from err
            if raw is not None:
                return self(raw)
        return self(message.decode())

    def __call__(self, message: Any) -> np.ndarray:
        """The decoded image (HWC; RGB order for colour) of a deserialized message."""
        try:
            if self.compressed:
                return decode_compressed_image(message.data, message.format, buffers=self._buffers)
            return decode_raw_image(
                message.data,
                height=int(message.height),
                width=int(message.width),
                encoding=str(message.encoding),
                step=int(message.step),
                is_bigendian=bool(message.is_bigendian),
            )
        except MediaError as err:
            raise DecodeError(err.reason, topic=self.topic) from err
