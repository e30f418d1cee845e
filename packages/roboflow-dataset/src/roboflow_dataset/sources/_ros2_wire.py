"""Common ROS 2 message types read straight from little-endian CDR, without rosbags.

rosbags builds a type store from a channel's schema and generates (de)serializers for each type
before its first message: tens of milliseconds before a conversion's first frame, and ~10-30 us a
message after. For the types robot arms record most (``sensor_msgs/JointState``,
``std_msgs/Float32MultiArray`` / ``Float64MultiArray``, ``sensor_msgs/CompressedImage``), whose
definition in the file is exactly the standard one, the readers here give the same values
(:func:`known_type`): the same fields, Python ``int``/``str``/``list`` and read-only numpy arrays of
the same dtype, the same errors on the same malformed bytes (as exceptions the caller wraps). A
schema that differs in any way (other fields, constants, default values, bounded or fixed-size
arrays, IDL) is left to rosbags, as is a big-endian payload; ``sensor_msgs/Image`` is known only for
its header stamp (its pixels are read by :mod:`roboflow_dataset._image_wire`).
"""

from __future__ import annotations

import re
import struct
import sys
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any, ClassVar, NamedTuple

import msgspec
import numpy as np
from numpy.typing import NDArray

__all__ = ["CDR_LE", "KnownType", "known_type", "ros2_msgtype"]

CDR_LE = b"\x00\x01"
"""The encapsulation header of little-endian plain CDR (the readers' only input)."""

_HEADER = "std_msgs/msg/Header"
_TIME = "builtin_interfaces/msg/Time"
_LAYOUT = "std_msgs/msg/MultiArrayLayout"
_DIMENSION = "std_msgs/msg/MultiArrayDimension"

_Fields = tuple[tuple[str, str], ...]
_DEFINITIONS: dict[str, _Fields] = {
    _TIME: (("int32", "sec"), ("uint32", "nanosec")),
    _HEADER: ((_TIME, "stamp"), ("string", "frame_id")),
    "sensor_msgs/msg/JointState": (
        (_HEADER, "header"),
        ("string[]", "name"),
        ("float64[]", "position"),
        ("float64[]", "velocity"),
        ("float64[]", "effort"),
    ),
    _DIMENSION: (("string", "label"), ("uint32", "size"), ("uint32", "stride")),
    _LAYOUT: ((f"{_DIMENSION}[]", "dim"), ("uint32", "data_offset")),
    "std_msgs/msg/Float32MultiArray": ((_LAYOUT, "layout"), ("float32[]", "data")),
    "std_msgs/msg/Float64MultiArray": ((_LAYOUT, "layout"), ("float64[]", "data")),
    "sensor_msgs/msg/CompressedImage": ((_HEADER, "header"), ("string", "format"), ("uint8[]", "data")),
    "sensor_msgs/msg/Image": (
        (_HEADER, "header"),
        ("uint32", "height"),
        ("uint32", "width"),
        ("string", "encoding"),
        ("uint8", "is_bigendian"),
        ("uint32", "step"),
        ("uint8[]", "data"),
    ),
}
"""The standard definitions (ROS 2 Humble and later), types as rosbags names them."""

_PRIMITIVES = frozenset(("int32", "uint32", "uint8", "float32", "float64", "string"))
_SEPARATOR = "=" * 80
# rosbags' MSG grammar, for the lines a plain definition has (a type: a primitive, or packages and
# a message name; a field name; a comment).
_FIELD = re.compile(
    r"[ \t]*((?:[a-z](?:_?[a-z0-9]+)*/)*[A-Za-z](?:_?[A-Za-z0-9]+)*)(\[\])?[ \t]+([A-Za-z][A-Za-z0-9_]*)"
    r"[ \t]*(?:#.*)?"
)
_BLANK = re.compile(r"[ \t]*(?:#.*)?")
_MSG = re.compile(r"MSG: ([A-Za-z0-9/_]+)[ \t]*")
_ALIASES = {"time": _TIME, "Header": _HEADER}


# The message values: the fields and field order of rosbags' classes of the same types.
class Time(msgspec.Struct):
    __msgtype__: ClassVar[str] = _TIME
    sec: int
    nanosec: int


class Header(msgspec.Struct):
    __msgtype__: ClassVar[str] = _HEADER
    stamp: Time
    frame_id: str


class JointState(msgspec.Struct):
    __msgtype__: ClassVar[str] = "sensor_msgs/msg/JointState"
    header: Header
    name: list[str]
    position: NDArray[Any]
    velocity: NDArray[Any]
    effort: NDArray[Any]


class MultiArrayDimension(msgspec.Struct):
    __msgtype__: ClassVar[str] = _DIMENSION
    label: str
    size: int
    stride: int


class MultiArrayLayout(msgspec.Struct):
    __msgtype__: ClassVar[str] = _LAYOUT
    dim: list[MultiArrayDimension]
    data_offset: int


class Float32MultiArray(msgspec.Struct):
    __msgtype__: ClassVar[str] = "std_msgs/msg/Float32MultiArray"
    layout: MultiArrayLayout
    data: NDArray[Any]


class Float64MultiArray(msgspec.Struct):
    __msgtype__: ClassVar[str] = "std_msgs/msg/Float64MultiArray"
    layout: MultiArrayLayout
    data: NDArray[Any]


class CompressedImage(msgspec.Struct):
    __msgtype__: ClassVar[str] = "sensor_msgs/msg/CompressedImage"
    header: Header
    format: str
    data: NDArray[Any]


# The readers mirror rosbags' generated little-endian CDR deserializers step by step (alignment
# relative to the body after the 4-byte encapsulation header, sequence and string checks), so
# they accept and reject exactly the same bytes.
_U32 = struct.Struct("<I").unpack_from
_U32_PAIR = struct.Struct("<II").unpack_from
_STAMP = struct.Struct("<iI").unpack_from


def _string(body: bytes, pos: int) -> tuple[str, int]:
    (size,) = _U32(body, pos)
    end = pos + 4 + size
    if size < 1 or end > len(body):
        raise ValueError(f"invalid string length {size} at offset {pos}")
    if body[end - 1] != 0:
        raise ValueError(f"missing string terminator at offset {end - 1}")
    return body[pos + 4 : end - 1].decode(), end


def _count(body: bytes, pos: int, minimum: int) -> tuple[int, int]:
    """A sequence's length at ``pos`` and where its items start."""
    (size,) = _U32(body, pos)
    pos += 4
    if pos + size * minimum > len(body):
        raise ValueError(f"invalid sequence length {size} at offset {pos}")
    return size, pos


def _array(body: bytes, pos: int, dtype: type[np.generic], itemsize: int) -> tuple[NDArray[Any], int]:
    size, pos = _count(body, pos, itemsize)
    if size and itemsize == 8:
        pos = (pos + 7) & -8
    return np.frombuffer(body, dtype, size, pos), pos + size * itemsize


def _header(body: bytes) -> tuple[Header, int]:
    sec, nanosec = _STAMP(body, 0)
    frame_id, pos = _string(body, 8)
    return Header(Time(sec, nanosec), frame_id), pos


def _layout(body: bytes) -> tuple[MultiArrayLayout, int]:
    size, pos = _count(body, 0, 1)
    dims = []
    for _ in range(size):  # each starts aligned: rosbags' alignment before it is a no-op
        label, pos = _string(body, pos)
        pos = (pos + 3) & -4
        count, stride = _U32_PAIR(body, pos)
        dims.append(MultiArrayDimension(label, count, stride))
        pos += 8
    (offset,) = _U32(body, pos)
    return MultiArrayLayout(dims, offset), pos + 4


def _joint_state(body: bytes) -> tuple[JointState, int]:
    header, pos = _header(body)
    size, pos = _count(body, (pos + 3) & -4, 5)
    names = []
    for _ in range(size):
        name, pos = _string(body, (pos + 3) & -4)
        names.append(name)
    position, pos = _array(body, (pos + 3) & -4, np.float64, 8)
    velocity, pos = _array(body, pos, np.float64, 8)
    effort, pos = _array(body, pos, np.float64, 8)
    return JointState(header, names, position, velocity, effort), pos


def _float32_multi_array(body: bytes) -> tuple[Float32MultiArray, int]:
    layout, pos = _layout(body)
    data, pos = _array(body, pos, np.float32, 4)
    return Float32MultiArray(layout, data), pos


def _float64_multi_array(body: bytes) -> tuple[Float64MultiArray, int]:
    layout, pos = _layout(body)
    data, pos = _array(body, pos, np.float64, 8)
    return Float64MultiArray(layout, data), pos


def _compressed_image(body: bytes) -> tuple[CompressedImage, int]:
    header, pos = _header(body)
    image_format, pos = _string(body, (pos + 3) & -4)
    data, pos = _array(body, (pos + 3) & -4, np.uint8, 1)
    return CompressedImage(header, image_format, data), pos


def _reader(read_body: Callable[[bytes], tuple[Any, int]]) -> Callable[[bytes], Any]:
    def read(data: bytes) -> Any:
        value, pos = read_body(data[4:])
        if pos + 4 + 3 < len(data):  # rosbags' test: more than the final alignment padding left
            raise ValueError(f"{len(data) - pos - 4} bytes left after the message")
        return value

    return read


_READERS: dict[str, Callable[[bytes], Any]] = {
    "sensor_msgs/msg/JointState": _reader(_joint_state),
    "std_msgs/msg/Float32MultiArray": _reader(_float32_multi_array),
    "std_msgs/msg/Float64MultiArray": _reader(_float64_multi_array),
    "sensor_msgs/msg/CompressedImage": _reader(_compressed_image),
}


class KnownType(NamedTuple):
    """What is known of a type whose definition is the standard one.

    Attributes:
        has_header: Its first field is a ``std_msgs/Header``.
        read: Little-endian CDR payload (encapsulation header included) to the message, as rosbags
            decodes it; ``None`` for a type rosbags decodes.
    """

    has_header: bool
    read: Callable[[bytes], Any] | None


def ros2_msgtype(name: str) -> str:
    """``pkg/Type`` as ``pkg/msg/Type`` (as rosbags' ``normalize_msgtype``, whose module takes
    ~25 ms to import)."""
    path = PurePosixPath(name)
    if path.parent.name not in ("msg", "action"):
        path = path.parent / "msg" / path.name
    return str(path)


def _field_type(owner: str, name: str) -> str:
    """A field's type as rosbags resolves it in the definition of ``owner``."""
    if name in _PRIMITIVES:
        return name
    name = _ALIASES.get(name, name)
    if "/" not in name:
        return str(PurePosixPath(owner).parent / name)
    return name if "/msg/" in name else ros2_msgtype(name)


def _parse(msgtype: str, text: str) -> dict[str, _Fields] | None:
    """The definitions of a ``ros2msg`` schema, or ``None`` when it holds anything but plain fields
    (constants, default values, annotations, fixed or bounded sizes) or does not parse."""
    definitions: dict[str, _Fields] = {}
    owner, fields = msgtype, list[tuple[str, str]]()
    lines = iter(text.split("\n"))
    for line in lines:
        if line == _SEPARATOR:
            header = _MSG.fullmatch(next(lines, ""))
            if header is None or owner in definitions:
                return None
            definitions[owner] = tuple(fields)
            owner, fields = ros2_msgtype(header.group(1)), []
        elif (match := _FIELD.fullmatch(line)) is not None:
            typ, sequence, name = match.groups()
            fields.append((_field_type(owner, typ) + (sequence or ""), name))
        elif _BLANK.fullmatch(line) is None:
            return None
    if owner in definitions:
        return None
    definitions[owner] = tuple(fields)
    return definitions


def _closure(msgtype: str) -> dict[str, _Fields]:
    """``msgtype``'s standard definition and those of the types it uses."""
    found: dict[str, _Fields] = {}
    todo = [msgtype]
    while todo:
        name = todo.pop()
        if name not in found:
            found[name] = _DEFINITIONS[name]
            todo.extend(t.removesuffix("[]") for t, _ in found[name] if t.removesuffix("[]") in _DEFINITIONS)
    return found


def known_type(schema_encoding: str, msgtype: str, schema: bytes) -> KnownType | None:
    """The native reading of a CDR channel of ``msgtype``, or ``None`` when rosbags must decode it.

    Known: a type of :data:`_DEFINITIONS` whose ``ros2msg`` schema defines it and the types it uses
    exactly as the standard does (whatever the comments, blank lines and spelling of type names;
    ``builtin_interfaces/Time`` may be left out, as rosbags defines it anyway), or that has no schema
    (rosbags then takes the standard definition too); on a little-endian host.

    Args:
        schema_encoding: The channel's schema encoding (``""`` when it has none).
        msgtype: The message type, ``pkg/msg/Type``.
        schema: The schema data.
    """
    if msgtype not in _DEFINITIONS or sys.byteorder != "little":
        return None
    try:
        text = schema.decode()
    except UnicodeDecodeError:
        return None
    if schema_encoding and text.strip():  # else rosbags takes the standard definition too
        defined = _parse(msgtype, text) if schema_encoding == "ros2msg" else None
        closure = _closure(msgtype)
        if defined is not None and _TIME in closure:  # rosbags' every store defines it
            defined.setdefault(_TIME, closure[_TIME])
        if defined != closure:
            return None
    return KnownType(_DEFINITIONS[msgtype][0][0] == _HEADER, _READERS.get(msgtype))
