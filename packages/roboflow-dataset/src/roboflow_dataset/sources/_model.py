"""Value types of the sources API: channels, messages and topic summaries."""

from __future__ import annotations

import struct
from functools import cached_property
from pathlib import Path
from typing import Any

import msgspec

from roboflow_core.errors import DecodeError, RoboflowError
from roboflow_dataset.sources._codecs import Codec, codec_for

__all__ = ["Channel", "Message", "Payload", "TopicInfo"]

Payload = bytes | memoryview
"""A raw message payload: its own bytes, or a read-only view of the buffer it was read in."""


class TopicInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Summary of one topic of a recording (exact counts).

    Attributes:
        topic: Topic name.
        msgtype: Message type (``pkg/msg/Type`` for ROS types, the schema name otherwise).
        encoding: Message encoding (``cdr``, ``ros1``, ``protobuf``, ``json``).
        count: Number of messages.
        first_log_time_ns: Log time of the first message, ``None`` when there is none.
        last_log_time_ns: Log time of the last message, ``None`` when there is none.
    """

    topic: str
    msgtype: str
    encoding: str
    count: int
    first_log_time_ns: int | None
    last_log_time_ns: int | None


class Channel:
    """One stream of messages of one topic in one storage file; owns the cached codec.

    Args:
        path: The storage file (its URL when remote).
        topic: Topic name.
        msgtype: Message type name.
        encoding: Message encoding.
        schema_encoding: Schema encoding, ``""`` when the file has no schema.
        schema: Schema data.
    """

    def __init__(
        self,
        path: Path | str,
        topic: str,
        msgtype: str,
        encoding: str,
        schema_encoding: str = "",
        schema: bytes = b"",
    ) -> None:
        self.path = path
        self.topic = topic
        self.msgtype = msgtype
        self.encoding = encoding
        self.schema_encoding = schema_encoding
        self.schema = schema

    def __repr__(self) -> str:
        return f"Channel({self.topic!r}, {self.msgtype!r}, {self.encoding!r})"

    @cached_property
    def codec(self) -> Codec:
        """The codec of this channel, built on first use.

        Raises:
            DecodeError: No decoder can be built from the channel's schema.
        """
        try:
            return codec_for(self.encoding, self.schema_encoding, self.msgtype, self.schema)
        except Exception as err:
            raise DecodeError(
                f"cannot build a {self.encoding} decoder for {self.msgtype!r}: {err}",
                path=str(self.path),
                topic=self.topic,
            ) from err

    def decode(self, data: Payload, log_time_ns: int) -> Any:
        """Decode one payload of this channel (a view is copied first: the decoders take bytes).

        Raises:
            DecodeError: The payload does not deserialize.
        """
        try:
            return self.codec.decode(bytes(data))
        except RoboflowError:
            raise
        except Exception as err:
            raise self._error(f"cannot deserialize {self.msgtype!r}: {err}", log_time_ns) from err

    def header_stamp(self, data: Payload, log_time_ns: int) -> int | None:
        """Read the header stamp of one payload without decoding it (``None`` without a header).

        Raises:
            DecodeError: The payload is too short to hold a header.
        """
        stamp = self.codec.stamp
        if stamp is None:
            return None
        try:
            return stamp(data)
        except (struct.error, IndexError) as err:
            raise self._error(f"payload too short for a header ({len(data)} bytes)", log_time_ns) from err

    def _error(self, reason: str, log_time_ns: int) -> DecodeError:
        return DecodeError(reason, path=str(self.path), topic=self.topic, log_time_ns=log_time_ns)


_UNSET: Any = object()


class Message:
    """One message of a recording: raw payload plus lazy, cached decoding.

    Args:
        channel: The channel the message belongs to.
        log_time_ns: Log (receive) time in ns.
        data: Raw serialized payload (a read-only view of a larger buffer for large payloads of
            the MCAP and ROS1 stream readers, see :func:`~roboflow_dataset.sources._storage.payload_of`).
    """

    __slots__ = ("_channel", "_value", "data", "log_time_ns")

    def __init__(self, channel: Channel, log_time_ns: int, data: Payload) -> None:
        self._channel = channel
        self._value = _UNSET
        self.log_time_ns = log_time_ns
        self.data = data

    def __repr__(self) -> str:
        return f"Message({self.topic!r}, log_time_ns={self.log_time_ns}, {len(self.data)} bytes)"

    @property
    def topic(self) -> str:
        """Topic name."""
        return self._channel.topic

    @property
    def msgtype(self) -> str:
        """Message type name."""
        return self._channel.msgtype

    @property
    def encoding(self) -> str:
        """Message encoding (``cdr``, ``ros1``, ``protobuf``, ``json``)."""
        return self._channel.encoding

    @property
    def header_stamp_ns(self) -> int | None:
        """Header stamp in ns read from the raw bytes, ``None`` when the type has no header.

        Raises:
            DecodeError: The payload is too short or the type cannot be resolved.
        """
        return self._channel.header_stamp(self.data, self.log_time_ns)

    def decode(self) -> Any:
        """Decode the payload (once; later calls return the same object).

        Returns:
            A rosbags message object (attribute access, primitive arrays as numpy) for ROS
            encodings (for a few common ROS 2 types, a struct with the same fields and values:
            :mod:`~roboflow_dataset.sources._ros2_wire`), the protobuf message for protobuf, the
            parsed value for JSON.

        Raises:
            DecodeError: The payload does not deserialize; names file, topic and log time.
        """
        if self._value is _UNSET:
            self._value = self._read()
        return self._value

    def _read(self) -> Any:
        return self._channel.decode(self.data, self.log_time_ns)
