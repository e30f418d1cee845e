"""MCAP storage files (bare MCAP and rosbag2 MCAP storage).

Indexed files are read chunk by chunk in log-time order (seeking); files without chunk indexes
are streamed in file order. Counts come from the message indexes when they are complete and
agree with the statistics, otherwise from a counting pass over the file.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, NamedTuple, Protocol, cast

from roboflow_core.errors import CorruptRecordingError
from roboflow_dataset.sources._limits import (
    MAX_RECORD_BYTES,
    check_log_time,
    check_size,
    decompress,
    decompress_prefix,
)
from roboflow_dataset.sources._magic import MCAP_MAGIC
from roboflow_dataset.sources._mcap_chunks import (
    CHANNEL,
    CHUNK,
    FOOTER,
    MESSAGE,
    SCHEMA,
    BoundedReader,
    chunk_records,
    indexed_records,
    message_record,
    read_chunk,
)
from roboflow_dataset.sources._model import Channel
from roboflow_dataset.sources._ros2_wire import ros2_msgtype
from roboflow_dataset.sources._storage import ChannelStats, Record, count_records, reading

if TYPE_CHECKING:  # the indexed read's (mcap's records: ~8 ms to import, which a forward read skips)
    from mcap.summary import Summary

__all__ = ["McapStorage", "iter_mcap_records"]

_RECORD_PREFIX = 1 + 8  # opcode + record length
_PREFIX = struct.Struct("<BQ")
_READ = frozenset((MESSAGE, CHUNK, SCHEMA, CHANNEL, FOOTER))
"""Records the forward read parses; the others are skipped."""
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


class _SchemaRecord(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def encoding(self) -> str: ...
    @property
    def data(self) -> bytes: ...


class _ChannelRecord(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def message_encoding(self) -> str: ...


class _Schema(NamedTuple):
    id: int
    name: str
    encoding: str
    data: bytes


class _Channel(NamedTuple):
    id: int
    schema_id: int
    topic: str
    message_encoding: str


class _Fields:
    """The fields of a Schema or Channel record, read as mcap's ``ReadDataStream`` reads them (a
    field cut short by the record's end is kept short, nothing left at all is an error), without
    importing mcap's records."""

    __slots__ = ("body", "pos")

    def __init__(self, body: memoryview) -> None:
        self.body = body
        self.pos = 0

    def bytes(self, size: int) -> bytes:
        if size == 0:
            return b""
        data = bytes(self.body[self.pos : self.pos + size])
        if not data:
            raise EOFError(f"the record ends at byte {self.pos}, before a field of {size} bytes")
        self.pos += len(data)
        return data

    def u16(self) -> int:
        return int(_U16.unpack(self.bytes(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self.bytes(4))[0])

    def string(self) -> str:
        return str(self.bytes(self.u32()), "utf-8")


def _read_schema(body: memoryview) -> _Schema:
    fields = _Fields(body)
    return _Schema(fields.u16(), fields.string(), fields.string(), fields.bytes(fields.u32()))


def _read_channel(body: memoryview) -> _Channel:
    fields = _Fields(body)
    record = _Channel(fields.u16(), fields.u16(), fields.string(), fields.string())
    end = fields.u32() + fields.pos
    while fields.pos < end:  # the metadata map: read (and refused when damaged) as mcap does
        fields.string(), fields.string()
    return record


def _make_channel(path: Path | str, channel: _ChannelRecord, schema: _SchemaRecord | None) -> Channel:
    name = schema.name if schema is not None else ""
    if name and channel.message_encoding in ("cdr", "ros1"):
        name = ros2_msgtype(name)
    if schema is None:
        return Channel(path, channel.topic, name, channel.message_encoding)
    return Channel(path, channel.topic, name, channel.message_encoding, schema.encoding, schema.data)


def _chunk_prefix(body: bytes, path: Path | str, offset: int) -> memoryview:
    """What decompresses of a chunk record's written part (empty when not even its header is)."""
    try:
        chunk = read_chunk(memoryview(body), path=path, offset=offset, partial=True)
    except (ValueError, struct.error):
        return memoryview(b"")
    return memoryview(decompress_prefix(chunk.compression, chunk.data, chunk.uncompressed_size))


class _McapForward:
    """The records of one forward read, turned into messages (channels and schemas registered);
    payloads as :func:`~roboflow_dataset.sources._mcap_chunks.message_record` gives them (large
    ones are views of the buffer they were read in)."""

    def __init__(self, path: Path | str, channels: dict[int, Channel]) -> None:
        self.path = path
        self.channels = channels
        self.schemas: dict[int, _Schema] = {}

    def messages(self, records: Iterable[tuple[int, memoryview]], offset: int) -> Iterator[Record]:
        """The messages of ``records`` (those of chunks included), read at ``offset`` (for errors)."""
        channels, path = self.channels, self.path
        for opcode, body in records:
            if opcode == MESSAGE:
                yield message_record(body, channels, path, offset)
            elif opcode == CHUNK:
                chunk = read_chunk(body, path=path, offset=offset)
                data = decompress(
                    chunk.compression, chunk.data, chunk.uncompressed_size, path=path, offset=offset
                )
                yield from self.messages(chunk_records(memoryview(data), whole=True), offset)
            elif opcode == SCHEMA:
                defined = _read_schema(body)
                self.schemas[defined.id] = defined
            elif opcode == CHANNEL:
                channel_record = _read_channel(body)
                if channel_record.id not in channels:
                    schema = self.schemas.get(channel_record.schema_id)
                    channels[channel_record.id] = _make_channel(path, channel_record, schema)


def iter_mcap_records(stream: IO[bytes], path: Path | str, channels: dict[int, Channel]) -> Iterator[Record]:
    """Every message of an MCAP file in file order, reading ``stream`` strictly forward.

    Needs neither the summary nor the indexes: it stops after the footer and never seeks, so the
    stream may be a file still downloading (short reads are continued). A file cut short raises
    :class:`CorruptRecordingError` after the messages it holds whole, those of a chunk cut short
    included (what decompresses of it: every byte uncompressed, whole zstd/lz4 blocks), so a
    salvaging reader keeps every complete message. Records, chunks and log times are bounded
    (:mod:`~roboflow_dataset.sources._limits`). Large payloads are views of the record or chunk
    they were read in (see :func:`~roboflow_dataset.sources._mcap_chunks.message_record`).

    Args:
        stream: The file from its first byte; only ``read`` (and ``readinto`` where it has one)
            is called.
        path: Names the file in channels and errors.
        channels: Channels by id; channels met on the way are added.

    Yields:
        ``(log time ns, channel, payload)`` in file order.

    Raises:
        CorruptRecordingError: The file is truncated, damaged or beyond the bounds.
    """
    forward = _McapForward(path, channels)
    exact = BoundedReader(stream, path)
    with reading(path, "read the MCAP file in file order"):
        if exact.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
            raise CorruptRecordingError("not an MCAP file: the opening magic is missing", path=str(path))
        while True:
            offset = exact.offset
            head = exact.read(_RECORD_PREFIX)
            opcode, length = head[0], int.from_bytes(head[1:], "little")
            check_size(length, "a record", path=path, offset=offset)
            if opcode not in _READ:  # indexes, statistics, attachments: read past
                exact.read(length)
                continue
            try:
                body = exact.read_view(length)
            except CorruptRecordingError:
                if opcode == CHUNK:
                    prefix = _chunk_prefix(exact.cut_short, path, offset)
                    yield from forward.messages(chunk_records(prefix, whole=False), offset)
                raise
            if opcode == FOOTER:
                if exact.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
                    raise CorruptRecordingError("the closing magic after the footer is wrong", path=str(path))
                return
            yield from forward.messages(((opcode, body),), offset)
            del body  # the buffer is freed with the last message taken from it, before the next read


def _check_complete(path: Path | str, stream: IO[bytes]) -> None:
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(max(size - len(MCAP_MAGIC), 0))
    if size < 2 * len(MCAP_MAGIC) or stream.read(len(MCAP_MAGIC)) != MCAP_MAGIC:
        raise CorruptRecordingError(
            "truncated MCAP file: the closing magic is missing (was the recording interrupted? "
            "`mcap recover` can rebuild it)",
            path=str(path),
        )
    stream.seek(0)


class McapStorage:
    """One MCAP file.

    Args:
        path: The file, or the name (URL) of a remote one when ``open_stream`` is given.
        open_stream: Opens a new seekable binary stream over the file (a remote object's
            :class:`~roboflow_storage.ObjectReader`, or a stream over its spooled copy);
            default: ``open(path, "rb")``.
        release: Called by :meth:`close` (frees what ``open_stream`` reads from).

    Raises:
        CorruptRecordingError: The file is truncated or its summary is damaged.
    """

    def __init__(
        self,
        path: Path | str,
        open_stream: Callable[[], IO[bytes]] | None = None,
        *,
        release: Callable[[], None] | None = None,
    ) -> None:
        self.path = path
        self._open: Callable[[], IO[bytes]] = open_stream or (lambda: Path(path).open("rb"))  # noqa: SIM115 - opened in a with block by callers
        self._release = release
        self._channels: dict[int, Channel] = {}
        self._stats: dict[Channel, ChannelStats] | None = None
        from mcap.reader import SeekingReader  # the indexed read's; a one-pass read needs none (~2 ms)

        with reading(path, "open MCAP file"), self._open() as raw:
            _check_complete(path, raw)
            stream = cast(IO[bytes], BoundedReader(raw, path))
            self._summary = SeekingReader(stream, record_size_limit=MAX_RECORD_BYTES).get_summary()
            self._indexed = self._summary is not None and bool(self._summary.chunk_indexes)
            if self._summary is not None:
                self._channels = {
                    cid: _make_channel(path, ch, self._summary.schemas.get(ch.schema_id))
                    for cid, ch in self._summary.channels.items()
                }
            if not self._indexed:  # read whole anyway, and channels may show up only on the way
                self._stats = count_records(self._channels.values(), self._stream(stream))
        self.channels = list(self._channels.values())

    def stats(self) -> dict[Channel, ChannelStats]:
        """Exact per-channel counts and log-time bounds.

        Files with chunk indexes are counted on first use (from the message indexes, else by a
        counting pass), so opening one reads only its summary.
        """
        if self._stats is None:
            assert self._summary is not None
            with self._open() as raw:
                stream = cast(IO[bytes], BoundedReader(raw, self.path))
                stats = self._index_stats(stream, self._summary)
                if stats is None:
                    stats = count_records(self.channels, self._stream(stream))
                    self.channels = list(self._channels.values())
            self._stats = stats
        return self._stats

    def read(self, channels: Collection[Channel] | None, start_ns: int | None) -> Iterator[Record]:
        """Records of ``channels`` (all when ``None``) at or after ``start_ns``.

        Indexed files come in log-time order; unindexed ones in file order.
        """
        wanted = None if channels is None else set(channels)
        with self._open() as raw:
            if self._indexed:
                assert self._summary is not None
                topics = None if wanted is None else {ch.topic for ch in wanted}
                bounded = BoundedReader(raw, self.path)
                yield from indexed_records(
                    bounded, self.path, self._summary, self._channels, topics, start_ns
                )
                return
            for record in self._stream(raw):
                if (wanted is None or record[1] in wanted) and (start_ns is None or record[0] >= start_ns):
                    yield record

    def close(self) -> None:
        """Release what the streams read from (each read opens and closes its own stream)."""
        if self._release is not None:
            self._release()
            self._release = None

    def _stream(self, stream: IO[bytes]) -> Iterator[Record]:
        """Every message in file order, registering channels met on the way."""
        stream.seek(0)
        yield from iter_mcap_records(stream, self.path, self._channels)

    def _index_stats(self, stream: IO[bytes], summary: Summary) -> dict[Channel, ChannelStats] | None:
        """Counts from the message indexes, or ``None`` when they are missing or disagree."""
        if not summary.chunk_indexes or not all(c.message_index_offsets for c in summary.chunk_indexes):
            return None
        from mcap.data_stream import ReadDataStream
        from mcap.records import MessageIndex

        times: dict[int, list[int]] = {cid: [] for cid in self._channels}
        for chunk in summary.chunk_indexes:
            for channel_id, offset in chunk.message_index_offsets.items():
                stream.seek(offset + _RECORD_PREFIX)
                index = MessageIndex.read(ReadDataStream(stream))
                times.setdefault(channel_id, []).extend(t for t, _ in index.records)
        total = sum(len(t) for t in times.values())
        statistics = summary.statistics
        if (
            statistics is not None and statistics.message_count != total
        ) or times.keys() - self._channels.keys():
            return None
        stats = {}
        for cid, t in times.items():
            channel = self._channels[cid]
            first, last = min(t, default=None), max(t, default=None)
            if last is not None:
                check_log_time(last, path=self.path, topic=channel.topic)
            stats[channel] = ChannelStats(len(t), first, last)
        return stats
