"""The native CDR readers of common ROS 2 types against rosbags, the oracle they replace.

Values: messages serialized by rosbags (alignment from every string length, empty and non-empty
arrays and layouts) decode to the same fields and values. Errors: every truncation and a seeded
set of byte changes either fail in both or decode equal in both. Schemas: a definition is taken as
known only when rosbags parses it to the standard definition.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import msgspec
import numpy as np
import pytest
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.msg import normalize_msgtype
from rosbags.typesys.store import Typestore

from roboflow_core.errors import DecodeError
from roboflow_dataset.sources._codecs import codec_for
from roboflow_dataset.sources._model import Channel
from roboflow_dataset.sources._ros2_wire import known_type, ros2_msgtype

STORE = get_typestore(Stores.ROS2_HUMBLE)
T = STORE.types
JOINTS = "sensor_msgs/msg/JointState"
F32 = "std_msgs/msg/Float32MultiArray"
F64 = "std_msgs/msg/Float64MultiArray"
JPEG = "sensor_msgs/msg/CompressedImage"
READ = (JOINTS, F32, F64, JPEG)


def _header(frame_id: str, sec: int = 1_700_000_000, nanosec: int = 123_456_789) -> Any:
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id
    )


def _joints(frame_id: str, names: list[str], values: int) -> Any:
    return T[JOINTS](
        header=_header(frame_id),
        name=names,
        position=np.arange(values, dtype=np.float64) * 0.5,
        velocity=np.arange(values, dtype=np.float64)[::-1].copy(),
        effort=np.zeros(0 if values % 2 else values, dtype=np.float64),
    )


def _multi(msgtype: str, labels: list[str], values: int) -> Any:
    dims = [
        T["std_msgs/msg/MultiArrayDimension"](label=x, size=len(x) + 1, stride=7 * i)
        for i, x in enumerate(labels)
    ]
    dtype = np.float32 if msgtype == F32 else np.float64
    layout = T["std_msgs/msg/MultiArrayLayout"](dim=dims, data_offset=len(labels))
    return T[msgtype](layout=layout, data=np.linspace(-1, 1, values).astype(dtype))


def _jpeg(frame_id: str, image_format: str, size: int) -> Any:
    data = np.frombuffer(bytes(range(256)) * (size // 256 + 1), np.uint8)[:size].copy()
    return T[JPEG](header=_header(frame_id, sec=-5, nanosec=0), format=image_format, data=data)


def _messages() -> list[tuple[str, Any]]:
    strings = ["", "a", "ab", "abc", "abcd", "abcde", "joint_7", "ü-joint"]
    out: list[tuple[str, Any]] = []
    for i, text in enumerate(strings):
        out.append((JOINTS, _joints(text, strings[: i % 5], i % 5)))
        out.append((JOINTS, _joints(text, [], 0)))
        out.append((F32, _multi(F32, strings[: i % 4], i)))
        out.append((F64, _multi(F64, strings[i % 3 : i % 3 + 2], i % 3)))
        out.append((JPEG, _jpeg(text, strings[-i - 1], 3 * i)))
    return out


MESSAGES = _messages()


def _fields(message: Any) -> list[str]:
    if isinstance(message, msgspec.Struct):
        return list(message.__struct_fields__)
    # rosbags' classes list their __msgtype__ as a field too (compared as an attribute).
    return [f.name for f in dataclasses.fields(message) if f.name != "__msgtype__"]


def _same(native: Any, expected: Any, where: str = "message") -> None:
    """Field by field: same names, same leaf types and values (arrays: dtype, values, writability)."""
    if isinstance(expected, np.ndarray):
        assert isinstance(native, np.ndarray), where
        assert native.dtype == expected.dtype, where
        assert native.flags.writeable == expected.flags.writeable, where
        np.testing.assert_array_equal(native, expected, err_msg=where)
    elif isinstance(expected, list):
        assert isinstance(native, list) and len(native) == len(expected), where
        for k, (a, b) in enumerate(zip(native, expected, strict=True)):
            _same(a, b, f"{where}[{k}]")
    elif isinstance(expected, int | str):
        assert type(native) is type(expected) and native == expected, where
    else:
        names = _fields(expected)
        assert _fields(native) == names, where
        assert native.__msgtype__ == expected.__msgtype__
        for name in names:
            _same(getattr(native, name), getattr(expected, name), f"{where}.{name}")


def _codec_decode(msgtype: str, data: bytes) -> Any:
    return codec_for("cdr", "ros2msg", msgtype, _humble_text(msgtype).encode()).decode(data)


@pytest.mark.parametrize(("msgtype", "message"), MESSAGES)
def test_values_equal_rosbags(msgtype: str, message: Any) -> None:
    data = bytes(STORE.serialize_cdr(message, msgtype))
    known = known_type("ros2msg", msgtype, _humble_text(msgtype).encode())
    assert known is not None and known.read is not None
    _same(known.read(data), STORE.deserialize_cdr(data, msgtype))
    # Through the channel's codec too; a big-endian payload goes to rosbags.
    _same(_codec_decode(msgtype, data), STORE.deserialize_cdr(data, msgtype))
    big = bytes(STORE.serialize_cdr(message, msgtype, little_endian=False))
    from_rosbags = _codec_decode(msgtype, big)
    assert dataclasses.is_dataclass(from_rosbags)
    _same(from_rosbags, STORE.deserialize_cdr(big, msgtype))


def _outcome(decode: Any, data: bytes) -> Any:
    try:
        return decode(data)
    except Exception as err:
        return err


def _damaged(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = [data[:n] for n in range(len(data))]
    changed = []
    for _ in range(60):
        raw = bytearray(data)
        pos = rng.randrange(4, len(raw))
        raw[pos] = rng.choice((0, 1, 3, 0x7F, 0xFF, raw[pos] ^ 0x80))
        changed.append(bytes(raw))
    return [*cuts, *changed, data + b"\0" * 3, data + b"\0" * 8, data + b"junk\0\0\0\0\0"]


@pytest.mark.parametrize("msgtype", READ)
def test_damaged_payloads_fail_or_decode_as_rosbags_does(msgtype: str) -> None:
    rng = random.Random(17)
    known = known_type("", msgtype, b"")
    assert known is not None and known.read is not None
    checked = 0
    for _, message in (m for m in MESSAGES if m[0] == msgtype):
        for data in _damaged(bytes(STORE.serialize_cdr(message, msgtype)), rng):
            if data[:2] != b"\x00\x01" or len(data) < 4:
                continue  # not little-endian CDR: the codec hands it to rosbags
            native = _outcome(known.read, data)
            expected = _outcome(lambda d: STORE.deserialize_cdr(d, msgtype), data)
            assert isinstance(native, Exception) == isinstance(expected, Exception), (data, native, expected)
            if not isinstance(expected, Exception):
                _same(native, expected)
            checked += 1
    assert checked > 300


def test_a_damaged_payload_is_a_decode_error_naming_the_channel() -> None:
    schema = _humble_text(JOINTS).encode()
    channel = Channel("rec.mcap", "/joint_states", JOINTS, "cdr", "ros2msg", schema)
    data = bytes(STORE.serialize_cdr(_joints("base", ["a", "b"], 2), JOINTS))
    assert channel.header_stamp(data, 5) == 1_700_000_000_123_456_789
    for bad in (data[:30], data + b"\0" * 8, b"\x00\x05" + data[2:], data[:3]):
        with pytest.raises(DecodeError, match="cannot deserialize") as info:
            channel.decode(bad, 5)
        assert info.value.context["topic"] == "/joint_states"


def _humble_text(msgtype: str) -> str:
    """The standard definition as rosbag2 writes it (and the bench recording has it)."""
    return STORE.generate_msgdef(msgtype, ros_version=2)[0]


_COMMENTED_JOINTS = """# The state of a set of joints.
#   name: the joints' names
std_msgs/Header header # stamp: when the state was measured

string[] name\t\t# one per joint
float64[] position  #rad or m
float64[] velocity
  float64[] effort#Nm
================================================================================
MSG: std_msgs/Header
# Standard metadata for higher-level stamped data types.

builtin_interfaces/Time stamp

# Transform frame with which this data is associated.
string frame_id
================================================================================
MSG: builtin_interfaces/Time
# The seconds component, valid over all int32 values.
int32 sec

# The nanoseconds component, valid in the range [0, 1e9).
uint32 nanosec
"""


def _variants() -> list[tuple[str, str, str, bool]]:
    """(name, msgtype, schema, should be known)."""
    joints = _humble_text(JOINTS)
    f32 = _humble_text(F32)
    return [
        ("humble", JOINTS, joints, True),
        ("commented", JOINTS, _COMMENTED_JOINTS, True),
        ("ros1 style, no time section", JOINTS, STORE.generate_msgdef(JOINTS)[0], True),
        ("short header name", JOINTS, joints.replace("std_msgs/Header header", "Header header"), True),
        ("full names", JOINTS, joints.replace("std_msgs/Header", "std_msgs/msg/Header", 1), True),
        ("trailing blank lines", F32, f32 + "\n\n  \n", True),
        ("float64 data", F32, f32.replace("float32[] data", "float64[] data"), False),
        ("renamed field", JOINTS, joints.replace("effort", "efforts"), False),
        (
            "extra field",
            JOINTS,
            joints.replace("float64[] effort", "float64[] effort\nfloat64[] jerk"),
            False,
        ),
        ("missing field", JOINTS, joints.replace("float64[] effort\n", ""), False),
        ("default value", JOINTS, joints.replace("float64[] effort", "float64[] effort [1.0]"), False),
        ("constant", JOINTS, joints.replace("string[] name", "uint8 MODE=1\nstring[] name"), False),
        ("bounded sequence", JOINTS, joints.replace("float64[] effort", "float64[<=3] effort"), False),
        ("fixed array", JOINTS, joints.replace("float64[] effort", "float64[3] effort"), False),
        ("bounded string", JOINTS, joints.replace("string frame_id", "string<=8 frame_id"), False),
        ("other time type", JOINTS, joints.replace("builtin_interfaces/Time stamp", "Time stamp"), False),
        ("double slash", JOINTS, joints.replace("std_msgs/Header header", "std_msgs//Header header"), False),
        (
            "missing section",
            JOINTS,
            joints.split("=" * 80)[0] + "=" * 80 + "\n" + joints.split("=" * 80)[1],
            False,
        ),
        ("duplicate section", F32, f32 + "=" * 80 + "\n" + f32.split("=" * 80 + "\n")[-1], False),
        ("odd section name", JOINTS, joints.replace("MSG: std_msgs/Header", "MSG: ./std_msgs/Header"), False),
        ("short separator", JOINTS, joints.replace("=" * 80, "=" * 79), False),
        ("crlf", JOINTS, joints.replace("\n", "\r\n"), False),
        ("annotation", F32, '@verbatim (language="comment")\n' + f32, False),
        ("not a definition", F32, "this is not a message definition\n", False),
    ]


def _rosbags_equals_standard(msgtype: str, text: str) -> bool:
    """Whether rosbags parses ``text`` to the standard definitions of every type it defines, and
    defines the type and what it uses."""
    try:
        types = get_types_from_msg(text, msgtype)
        store: Typestore = get_typestore(Stores.EMPTY)
        store.register(types)
        store.get_msgdef(msgtype)
    except Exception:
        return False
    return all(store.fielddefs[t] == STORE.fielddefs[t] for t in types)


@pytest.mark.parametrize(
    ("name", "msgtype", "text", "expected"), _variants(), ids=[v[0] for v in _variants()]
)
def test_a_schema_is_known_only_when_rosbags_reads_it_as_the_standard(
    name: str, msgtype: str, text: str, expected: bool
) -> None:
    known = known_type("ros2msg", msgtype, text.encode()) is not None
    assert known == expected
    if known:
        assert _rosbags_equals_standard(msgtype, text)
        data = bytes(STORE.serialize_cdr(MESSAGES[[m[0] for m in MESSAGES].index(msgtype)][1], msgtype))
        store = get_typestore(Stores.EMPTY)
        store.register(get_types_from_msg(text, msgtype))
        _same(
            codec_for("cdr", "ros2msg", msgtype, text.encode()).decode(data),
            store.deserialize_cdr(data, msgtype),
        )


def test_every_standard_definition_matches_rosbags() -> None:
    for msgtype in (*READ, "sensor_msgs/msg/Image", "std_msgs/msg/Header", "std_msgs/msg/MultiArrayLayout"):
        assert known_type("ros2msg", msgtype, _humble_text(msgtype).encode()) is not None, msgtype
        assert _rosbags_equals_standard(msgtype, _humble_text(msgtype)), msgtype


def test_other_encodings_and_types_are_left_to_rosbags() -> None:
    text = _humble_text(JOINTS).encode()
    assert known_type("ros2idl", JOINTS, text) is None
    assert known_type("ros2msg", "sensor_msgs/msg/Imu", _humble_text("sensor_msgs/msg/Imu").encode()) is None
    assert known_type("ros2msg", JOINTS, b"\xff\xfe") is None
    # Without a schema rosbags takes the standard definition: so do the readers.
    assert known_type("", JOINTS, b"") is not None
    assert known_type("ros2msg", JOINTS, b" \n") is not None
    codec = codec_for(
        "cdr", "ros2msg", "sensor_msgs/msg/Image", _humble_text("sensor_msgs/msg/Image").encode()
    )
    image = T["sensor_msgs/msg/Image"](
        header=_header("cam"),
        height=1,
        width=2,
        encoding="rgb8",
        is_bigendian=0,
        step=6,
        data=np.arange(6, dtype=np.uint8),
    )
    data = bytes(STORE.serialize_cdr(image, "sensor_msgs/msg/Image"))
    assert codec.stamp is not None and codec.stamp(data) == 1_700_000_000_123_456_789
    decoded = codec.decode(data)  # no native reader: rosbags decodes it
    assert dataclasses.is_dataclass(decoded) and decoded.encoding == "rgb8"


@pytest.mark.parametrize(
    "name", ["sensor_msgs/JointState", "sensor_msgs/msg/JointState", "a/action/B", "Foo", "a/b/c"]
)
def test_msgtype_names_as_rosbags_normalizes_them(name: str) -> None:
    assert ros2_msgtype(name) == normalize_msgtype(name)
