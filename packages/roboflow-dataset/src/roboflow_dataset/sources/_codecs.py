"""Payload decoders built from a channel's own schema, and cheap header-stamp readers.

A :class:`Codec` is built once per distinct (encoding, schema) and shared by every channel that
uses it. ROS types come from the file's own definitions (so types missing from the standard
stores, such as ``test_msgs``, work); the standard store is used only when a file has none. A few
common ROS 2 types defined exactly as the standard defines them are read without rosbags
(:mod:`~roboflow_dataset.sources._ros2_wire`), which is then imported only if another type or a
big-endian payload needs it.
"""

from __future__ import annotations

import functools
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from roboflow_dataset.sources._ros2_wire import CDR_LE, known_type

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

__all__ = ["Codec", "codec_for", "trusted_definition"]

HEADER_TYPE = "std_msgs/msg/Header"
_IDL_SEPARATOR = "=" * 80 + "\n"
_CDR_LE = struct.Struct("<iI")
_CDR_BE = struct.Struct(">iI")
_ROS1 = struct.Struct("<II")


@dataclass(frozen=True, slots=True)
class Codec:
    """How to turn one channel's raw payloads into values.

    Attributes:
        decode: Raw payload to a decoded message.
        stamp: Raw payload to the header stamp in ns, or ``None`` when the type has no header.
    """

    decode: Callable[[bytes], Any]
    stamp: Callable[[bytes | memoryview], int] | None


def _cdr_stamp(data: bytes | memoryview) -> int:
    # CDR: 4-byte encapsulation header (byte 1 = 1 for little endian), then int32 sec, uint32 nanosec.
    sec, nanosec = (_CDR_LE if data[1] else _CDR_BE).unpack_from(data, 4)
    return int(sec) * 1_000_000_000 + int(nanosec)


def _ros1_stamp(data: bytes | memoryview) -> int:
    # ROS1 Header: uint32 seq, then uint32 secs, uint32 nsecs (little endian).
    sec, nanosec = _ROS1.unpack_from(data, 4)
    return int(sec) * 1_000_000_000 + int(nanosec)


@functools.cache
def _default_store(ros1: bool) -> Typestore:
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)


def _store_from_schema(schema_encoding: str, msgtype: str, text: str, ros1: bool) -> Typestore:
    from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

    if not schema_encoding or not text.strip():
        return _default_store(ros1)
    store = get_typestore(Stores.EMPTY)
    if schema_encoding in ("ros1msg", "ros2msg"):
        store.register(get_types_from_msg(text, msgtype))
    elif schema_encoding == "ros2idl":
        sections = text.split(_IDL_SEPARATOR)[1:] if text.startswith(f"{_IDL_SEPARATOR}IDL: ") else [text]
        for section in sections:
            store.register(
                get_types_from_idl(section.split("\n", 1)[1] if section.startswith("IDL: ") else section)
            )
    else:
        raise ValueError(f"unsupported schema encoding {schema_encoding!r} for ROS messages")
    return store


def trusted_definition(schema_encoding: str, msgtype: str, schema: bytes, digest: str) -> bool:
    """Whether to decode a rosbag2 type with the file's own definition.

    A definition that does not hash to its recorded RIHS01 digest (placeholders such as
    ``"uint8 level"`` / ``"hash2"`` occur in real test bags) is not trusted when the standard store
    knows the type; without a digest the definition is trusted.

    Args:
        schema_encoding: ``ros2msg`` or ``ros2idl``.
        msgtype: Message type name.
        schema: The definition.
        digest: The recorded type description hash, ``""`` when none.

    Returns:
        ``True`` to use the file's definition, ``False`` to use the standard store.
    """
    if not digest or msgtype not in _default_store(False).fielddefs:
        return True
    try:
        store = _store_from_schema(schema_encoding, msgtype, schema.decode(), ros1=False)
        return store.hash_rihs01(msgtype) == digest
    except Exception:
        return False


def _starts_with_header(store: Typestore, msgtype: str) -> bool:
    from rosbags.interfaces import Nodetype

    fields = store.fielddefs[msgtype][1]
    return bool(fields) and fields[0][1] == (Nodetype.NAME, HEADER_TYPE)


class _NativeDecoder:
    """Decodes a channel of a known type (:func:`~roboflow_dataset.sources._ros2_wire.known_type`):
    natively when it has a reader and the payload is little-endian CDR, else with rosbags' decoder,
    built on first use (it raises rosbags' error on a payload that is not CDR)."""

    __slots__ = ("_fallback", "_read", "_rosbags")

    def __init__(self, read: Callable[[bytes], Any] | None, rosbags: Callable[[], Codec]) -> None:
        self._read = read
        self._rosbags = rosbags
        self._fallback: Callable[[bytes], Any] | None = None

    def __call__(self, data: bytes) -> Any:
        if self._read is not None and data[:2] == CDR_LE and len(data) >= 4:
            return self._read(data)
        if self._fallback is None:
            self._fallback = self._rosbags().decode
        return self._fallback(data)


def _ros_codec(schema_encoding: str, msgtype: str, schema: bytes, ros1: bool) -> Codec:
    known = None if ros1 else known_type(schema_encoding, msgtype, schema)
    if known is None:
        return _rosbags_codec(schema_encoding, msgtype, schema, ros1)
    rosbags = functools.partial(_rosbags_codec, schema_encoding, msgtype, schema, ros1)
    return Codec(_NativeDecoder(known.read, rosbags), _cdr_stamp if known.has_header else None)


def _rosbags_codec(schema_encoding: str, msgtype: str, schema: bytes, ros1: bool) -> Codec:
    store = _store_from_schema(schema_encoding, msgtype, schema.decode(), ros1)
    if msgtype not in store.fielddefs:
        raise ValueError(f"type {msgtype!r} is neither in the file's schema nor in the standard store")
    stamp = (_ros1_stamp if ros1 else _cdr_stamp) if _starts_with_header(store, msgtype) else None
    deserialize = store.deserialize_ros1 if ros1 else store.deserialize_cdr
    return Codec(functools.partial(deserialize, typename=msgtype), stamp)


def _protobuf_codec(msgtype: str, schema: bytes) -> Codec:
    from mcap.records import Schema
    from mcap_protobuf.decoder import DecoderFactory

    record = Schema(id=1, name=msgtype, encoding="protobuf", data=schema)
    decoder = DecoderFactory().decoder_for("protobuf", record)
    if decoder is None:
        raise ValueError(f"no protobuf decoder for {msgtype!r}")
    return Codec(decoder, None)


@functools.lru_cache(maxsize=512)
def codec_for(encoding: str, schema_encoding: str, msgtype: str, schema: bytes) -> Codec:
    """Build (or reuse) the codec of a channel.

    Args:
        encoding: Message encoding (``cdr``, ``ros1``, ``protobuf``, ``json``).
        schema_encoding: Schema encoding (``ros2msg``, ``ros2idl``, ``ros1msg``, ``protobuf``,
            ``jsonschema``) or ``""`` when the file has no schema.
        msgtype: Message type name (``pkg/msg/Type`` for ROS types).
        schema: Schema data as stored in the file.

    Returns:
        The codec.

    Raises:
        ValueError: The encoding is not supported or the type cannot be resolved.
        rosbags.typesys.TypesysError: The schema does not parse.
    """
    if encoding in ("cdr", "ros1"):
        return _ros_codec(schema_encoding, msgtype, schema, ros1=encoding == "ros1")
    if encoding == "protobuf":
        return _protobuf_codec(msgtype, schema)
    if encoding == "json":
        return Codec(json.loads, None)
    raise ValueError(f"unsupported message encoding {encoding!r}")
