"""ROS1 bags (v2.0) read strictly forward, in file order, from a stream that only supports ``read``.

A conversion can start while the bag is still downloading: reads may return fewer bytes than
asked for and may block until more arrive; an empty read is the end of the file. Memory holds
one chunk (compressed and decompressed) at a time.

File layout: the magic, the bag header record (op 3, padded), then chunk records (op 5, each
holding message data (op 2) and connection (op 7) records), each followed by its index data
records (op 4); at ``index_pos`` the connection records again and the chunk info records (op 6).
Index data and chunk infos are skipped; a connection record is read where it is first met.
Top-level message data and connection records are accepted too (a chunk that an unfinished
recording was still writing).

End of file: a bag whose header has an ``index_pos`` must end after its complete index section
(``conn_count`` connection records and ``chunk_count`` chunk infos): a file cut anywhere before,
even exactly after a complete chunk, raises :class:`CorruptRecordingError` once the messages of
its complete chunks have been yielded (an interrupted download, which rosbags would refuse as
well). An unindexed bag (``index_pos`` 0, still being recorded) ends at any record boundary; a
cut inside a record raises. A chunk cut short yields, before the error, its messages that are
whole in the part that was written (what decompresses of it: every byte uncompressed, whole
blocks of lz4 and bz2), so a salvaging reader keeps every complete message.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from roboflow_core.errors import CorruptRecordingError, UnknownFormatError
from roboflow_dataset.sources._limits import check_size, decompress, decompress_prefix
from roboflow_dataset.sources._magic import ROS1_MAGIC
from roboflow_dataset.sources._model import Channel
from roboflow_dataset.sources._ros2_wire import ros2_msgtype
from roboflow_dataset.sources._storage import Record, payload_of, reading

__all__ = ["chunk_declared", "iter_ros1_records"]

_MSGDATA = b"\x02"
_BAGHEADER = b"\x03"
_IDXDATA = b"\x04"
_CHUNK = b"\x05"
_CHUNK_INFO = b"\x06"
_CONNECTION = b"\x07"

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_TIME = struct.Struct("<II")  # sec, nsec
_PIECE = 64 << 20  # largest single read: a damaged length cannot make one huge allocation

# A message data header holds exactly the op, conn and time fields (38 bytes); writers order them
# differently. Each field: 4-byte length, key (``_KEY_LEN`` bytes with length, name and "="), value.
_MESSAGE_HEADER_LEN = 38
_OP_FIELD = b"\x04\x00\x00\x00op=\x02"
_CONN_KEY = b"\x09\x00\x00\x00conn="
_TIME_KEY = b"\x0d\x00\x00\x00time="
_KEY_LEN = len(_CONN_KEY)  # == len(_TIME_KEY)


def _message_layouts() -> dict[tuple[bytes, ...], tuple[int, int, int]]:
    """Field order -> header offsets of the op, conn and time fields."""
    widths = {b"op": len(_OP_FIELD), b"conn": _KEY_LEN + 4, b"time": _KEY_LEN + 8}
    layouts = {}
    for order in itertools.permutations(widths):
        starts, at = {}, 0
        for name in order:
            starts[name] = at
            at += widths[name]
        layouts[order] = (starts[b"op"], starts[b"conn"], starts[b"time"])
    return layouts


_MESSAGE_LAYOUTS = _message_layouts()

_COMPRESSIONS = (b"none", b"bz2", b"lz4")


class MalformedRecord(ValueError):
    """A record inside a chunk is malformed (reported with the chunk's offset)."""


def _fields(buf: bytes, start: int, end: int) -> dict[bytes, bytes]:
    """The ``name=value`` fields of the record header in ``buf[start:end]``."""
    fields = {}
    unpack = _U32.unpack_from
    while start < end:
        if start + 4 > end:
            raise MalformedRecord(f"header field length at byte {start} is cut off")
        (size,) = unpack(buf, start)
        start += 4
        stop = start + size
        if stop > end:
            raise MalformedRecord(f"header field at byte {start - 4} runs past the header ({size} bytes)")
        sep = buf.find(b"=", start, stop)
        if sep < 0:
            raise MalformedRecord(f"header field at byte {start - 4} has no '='")
        fields[buf[start:sep]] = buf[sep + 1 : stop]
        start = stop
    return fields


def _field(fields: dict[bytes, bytes], name: bytes, size: int | None = None) -> bytes:
    value = fields.get(name)
    if value is None or (size is not None and len(value) != size):
        raise MalformedRecord(f"record header lacks a valid {name.decode()!r} field")
    return value


def _normalize_topic(name: str) -> str:
    """The topic as rosbags names it (one leading slash kept, empty segments dropped)."""
    return "/" * name.startswith("/") + "/".join(part for part in name.split("/") if part)


class _BagStream:
    """Record-level reading of one bag stream; ``offset`` is the file offset of the next read."""

    def __init__(self, stream: IO[bytes], path: Path | str) -> None:
        self.path = path
        self.offset = 0
        self.channels: dict[bytes, Channel] = {}  # by the raw 4-byte connection id
        self._read_raw = stream.read
        self._layout = _MESSAGE_LAYOUTS[b"op", b"conn", b"time"]
        self.cut_short = b""  # what the last read that met the end of the file got

    def corrupt(self, reason: str) -> CorruptRecordingError:
        return CorruptRecordingError(reason, path=str(self.path))

    def read(self, size: int, what: str) -> bytes:
        """Exactly ``size`` bytes (short reads are continued); the file ending first is damage."""
        data = self._read_raw(min(size, _PIECE))
        if len(data) == size:
            self.offset += size
            return data
        parts, got = [data], len(data)
        while got < size:
            piece = self._read_raw(min(size - got, _PIECE))
            if not piece:
                self.cut_short = b"".join(parts)
                raise self.corrupt(
                    f"truncated ROS1 bag: {what} at offset {self.offset} needs {size} bytes, "
                    f"the file ends after {got} (was the download or recording interrupted?)"
                )
            parts.append(piece)
            got += len(piece)
        self.offset += size
        return b"".join(parts)

    def record(self) -> tuple[int, dict[bytes, bytes], int] | None:
        """The next record's offset, header fields and data length (data not read); ``None`` at EOF."""
        offset = self.offset
        head = self._read_raw(4)
        if not head:
            return None
        if len(head) < 4:
            self.offset += len(head)
            head += self.read(4 - len(head), "a record header length")
        else:
            self.offset += 4
        (header_len,) = _U32.unpack(head)
        check_size(header_len, "a record header", path=self.path, offset=offset)
        header = self.read(header_len + 4, "a record header")
        with reading(self.path, f"parse the record header at offset {offset}"):
            fields = _fields(header, 0, header_len)
        (data_len,) = _U32.unpack_from(header, header_len)
        check_size(data_len, "a record's data", path=self.path, offset=offset)
        return offset, fields, data_len

    def skip(self, size: int, what: str) -> None:
        while size > 0:
            piece = min(size, _PIECE)
            self.read(piece, what)
            size -= piece

    def connection(self, fields: dict[bytes, bytes], data: bytes) -> None:
        """Register the channel of a connection record unless its id is known."""
        conn = _field(fields, b"conn", 4)
        if conn in self.channels:
            return
        info = _fields(data, 0, len(data))
        definition = _field(info, b"message_definition")
        definition.decode()  # rosbags keeps it as text: reject what it rejects
        self.channels[conn] = Channel(
            self.path,
            _normalize_topic(_field(fields, b"topic").decode()),
            ros2_msgtype(_field(info, b"type").decode()),
            "ros1",
            "ros1msg" if definition else "",
            definition,
        )

    def message(self, fields: dict[bytes, bytes]) -> tuple[int, Channel]:
        """Log time and channel of a message data record."""
        channel = self.channels.get(_field(fields, b"conn", 4))
        if channel is None:
            (conn,) = _U32.unpack(fields[b"conn"])
            raise MalformedRecord(f"message of connection {conn} comes before that connection's record")
        sec, nsec = _TIME.unpack(_field(fields, b"time", 8))
        return sec * 1_000_000_000 + nsec, channel

    def chunk_records(self, data: bytes) -> Iterator[Record]:
        """The messages of one decompressed chunk, registering its connections.

        Message headers laid out like the previous one are read at fixed offsets (the bulk of a
        chunk); any other record goes through the generic header parser. Payloads are views of
        ``data`` or copies, as :func:`~roboflow_dataset.sources._storage.payload_of` decides.
        """
        pos, end = 0, len(data)
        view = memoryview(data)
        unpack = _U32.unpack_from
        unpack_time = _TIME.unpack_from
        channels = self.channels
        op_at, conn_at, time_at = self._layout
        while pos < end:
            if pos + 4 > end:
                raise MalformedRecord(f"record at chunk byte {pos} is cut off")
            (header_len,) = unpack(data, pos)
            header = pos + 4
            header_end = header + header_len
            if header_end + 4 > end:
                raise MalformedRecord(f"record header at chunk byte {pos} runs past the chunk")
            (data_len,) = unpack(data, header_end)
            start = header_end + 4
            pos = start + data_len
            if pos > end:
                raise MalformedRecord(f"record data at chunk byte {start} runs past the chunk")
            conn = header + conn_at + _KEY_LEN
            if (
                header_len == _MESSAGE_HEADER_LEN
                and data[header + op_at : header + op_at + len(_OP_FIELD)] == _OP_FIELD
                and data[conn - _KEY_LEN : conn] == _CONN_KEY
                and data[header + time_at : header + time_at + _KEY_LEN] == _TIME_KEY
                and (channel := channels.get(data[conn : conn + 4])) is not None
            ):
                sec, nsec = unpack_time(data, header + time_at + _KEY_LEN)
                yield sec * 1_000_000_000 + nsec, channel, payload_of(view[start:pos])
                continue
            fields = _fields(data, header, header_end)
            op = fields.get(b"op")
            if op == _MSGDATA:
                log_time, channel = self.message(fields)
                yield log_time, channel, payload_of(view[start:pos])
                if header_len == _MESSAGE_HEADER_LEN and (layout := _MESSAGE_LAYOUTS.get(tuple(fields))):
                    self._layout = op_at, conn_at, time_at = layout
            elif op == _CONNECTION:
                self.connection(fields, data[start:pos])
            else:
                raise MalformedRecord(f"record of op {op!r} at chunk byte {start} does not belong in a chunk")

    def chunk(self, offset: int, fields: dict[bytes, bytes], data_len: int) -> Iterator[Record]:
        """Read, decompress and parse the chunk record at ``offset`` (its header already read)."""
        with reading(self.path, f"read the chunk header at offset {offset}"):
            compression = _field(fields, b"compression")
            (size,) = _U32.unpack(_field(fields, b"size", 4))
        if compression not in _COMPRESSIONS:
            raise self.corrupt(
                f"chunk at offset {offset} uses compression {compression.decode(errors='replace')!r}, "
                "which is not supported (none, lz4, bz2)"
            )
        try:
            data = self.read(data_len, "chunk data")
        except CorruptRecordingError:
            yield from self._whole_messages(decompress_prefix(compression.decode(), self.cut_short, size))
            raise
        data = decompress(compression.decode(), data, size, path=self.path, offset=offset)
        with reading(self.path, f"parse the chunk at offset {offset}"):
            yield from self.chunk_records(data)

    def _whole_messages(self, data: bytes) -> Iterator[Record]:
        """The messages of a chunk's written part, up to the first record it does not hold whole."""
        try:
            yield from self.chunk_records(data)
        except (MalformedRecord, CorruptRecordingError):
            return


def chunk_declared(stream: IO[bytes], offset: int, path: Path | str) -> tuple[str, int]:
    """The compression and declared uncompressed size of the chunk record at ``offset``.

    Raises:
        CorruptRecordingError: There is no valid chunk record header there.
    """
    stream.seek(offset)
    bag = _BagStream(stream, path)
    bag.offset = offset
    record = bag.record()
    with reading(path, f"read the chunk header at offset {offset}"):
        if record is None or record[1].get(b"op") != _CHUNK:
            raise MalformedRecord(f"no chunk record at offset {offset}")
        (size,) = _U32.unpack(_field(record[1], b"size", 4))
        return _field(record[1], b"compression").decode(), size


def _bag_header(bag: _BagStream) -> tuple[int, int, int]:
    """Check the magic and read the bag header record: ``index_pos``, ``conn_count``, ``chunk_count``."""
    magic = bag.read(len(ROS1_MAGIC), "the magic")
    if magic != ROS1_MAGIC:
        raise UnknownFormatError(f"not a ROS1 bag v2.0 (starts with {magic!r})", path=str(bag.path))
    record = bag.record()
    if record is None:
        raise bag.corrupt("truncated ROS1 bag: the bag header record is missing")
    _, fields, data_len = record
    with reading(bag.path, "read the bag header"):
        if _field(fields, b"op") != _BAGHEADER:
            raise MalformedRecord("the first record is not the bag header")
        if fields.get(b"encryptor"):
            raise MalformedRecord(f"bag encryption {fields[b'encryptor'].decode()!r} is not supported")
        (index_pos,) = _U64.unpack(_field(fields, b"index_pos", 8))
        (conn_count,) = _U32.unpack(_field(fields, b"conn_count", 4))
        (chunk_count,) = _U32.unpack(_field(fields, b"chunk_count", 4))
    bag.skip(data_len, "the bag header padding")
    return index_pos, conn_count, chunk_count


def iter_ros1_records(stream: IO[bytes], path: Path | str) -> Iterator[Record]:
    """Every message of a ROS1 bag in file order, reading ``stream`` strictly forward.

    Channels are built as :class:`~roboflow_dataset.sources._ros1.Ros1Storage` builds them (one
    per connection; topic and message type normalized as rosbags does).

    Args:
        stream: The bag from its first byte; only ``read`` is called (short reads are fine).
        path: Names the bag in channels and errors.

    Yields:
        ``(log time ns, channel, payload)`` in file order.

    Raises:
        UnknownFormatError: The stream does not start with the ROS1 v2.0 magic.
        CorruptRecordingError: The bag is truncated (see the module docstring) or damaged, or a
            chunk uses an unsupported compression.
    """
    bag = _BagStream(stream, path)
    index_pos, conn_count, chunk_count = _bag_header(bag)
    index_connections = chunk_infos = 0
    while (record := bag.record()) is not None:
        offset, fields, data_len = record
        op = fields.get(b"op")
        if op == _CHUNK:
            yield from bag.chunk(offset, fields, data_len)
        elif op in (_IDXDATA, _CHUNK_INFO):
            bag.skip(data_len, "index data" if op == _IDXDATA else "a chunk info")
            chunk_infos += op == _CHUNK_INFO
        elif op in (_MSGDATA, _CONNECTION):
            data = bag.read(data_len, "record data")
            with reading(path, f"read the record at offset {offset}"):
                if op == _CONNECTION:
                    bag.connection(fields, data)
                    index_connections += bool(index_pos) and offset >= index_pos
                else:
                    log_time, channel = bag.message(fields)
            if op == _MSGDATA:
                yield log_time, channel, data
        else:
            raise bag.corrupt(f"unknown record op {op!r} at offset {offset}")
    if index_pos and (index_connections < conn_count or chunk_infos < chunk_count):
        raise bag.corrupt(
            f"truncated ROS1 bag: the file ends at offset {bag.offset}, the index section that starts "
            f"at {index_pos} is incomplete ({index_connections} of {conn_count} connection records, "
            f"{chunk_infos} of {chunk_count} chunk infos; was the download interrupted?)"
        )
