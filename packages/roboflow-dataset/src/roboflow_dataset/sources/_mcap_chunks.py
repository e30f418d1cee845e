"""Bounded reading of MCAP records: reads capped per record, chunks decompressed within their
declared size, and the indexed (log-time order) read of chunks.

mcap's own readers trust the lengths a file declares (a chunk's ``uncompressed_size`` becomes the
output buffer; a record length is read as is up to 4 GiB); these helpers put
:mod:`~roboflow_dataset.sources._limits` in front of every such length.
"""

from __future__ import annotations

import heapq
import io
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, NamedTuple

from roboflow_core.buffers import BufferPool
from roboflow_core.errors import CorruptRecordingError
from roboflow_dataset.sources._limits import check_log_time, check_size, decompress
from roboflow_dataset.sources._model import Channel
from roboflow_dataset.sources._storage import Record, payload_of, reading

if TYPE_CHECKING:  # mcap's records and summary: the indexed read's, ~8 ms to import
    from mcap.records import ChunkIndex
    from mcap.summary import Summary

__all__ = [
    "CHANNEL",
    "CHUNK",
    "FOOTER",
    "MESSAGE",
    "SCHEMA",
    "BoundedReader",
    "ChunkView",
    "chunk_records",
    "indexed_records",
    "message_record",
    "read_chunk",
]

_PREFIX = struct.Struct("<BQ")  # opcode, record length
_MESSAGE_HEAD = struct.Struct("<HIQQ")  # channel id, sequence, log time, publish time
# Record opcodes of the MCAP specification (as mcap.opcode.Opcode, which the forward read does
# not import).
FOOTER, SCHEMA, CHANNEL, MESSAGE, CHUNK = 0x02, 0x03, 0x04, 0x05, 0x06
_CHUNK_HEAD = struct.Struct("<QQQII")  # start time, end time, uncompressed size, crc, compression length
_U64 = struct.Struct("<Q")
_BUFFERS, _BUFFER_BYTES = 32, 128 << 20
"""Record buffers a reader keeps for reuse, and their bytes: more than the chunks whose messages a
conversion holds at once (decoded frames queued for the encoders, messages the aligner holds)."""


class BoundedReader:
    """A binary stream for MCAP reading: no read larger than a record may be, and short reads
    (a file still downloading) continued until ``size`` bytes; the file ending inside a read is
    damage (what that read got is kept in ``cut_short``, for salvage).

    Args:
        stream: The file; ``seek``/``tell`` are passed on when it has them.
        path: Names the file in errors.
        offset: The file offset ``stream`` is at.
    """

    def __init__(self, stream: IO[bytes], path: Path | str, offset: int = 0) -> None:
        self._stream = stream
        self._read = stream.read
        self._path = path
        self.offset = offset
        self.cut_short = b""
        self._buffers = BufferPool(_BUFFERS, _BUFFER_BYTES)

    def read(self, size: int = -1) -> bytes:
        check_size(size, "a record field", path=self._path, offset=self.offset)
        data = self._read(size)
        if size < 0 or len(data) == size or not data:
            self.offset += len(data)
            return data
        parts, got = [data], len(data)
        while got < size:
            piece = self._read(size - got)
            if not piece:
                self.cut_short = b"".join(parts)
                raise self._truncated(size, got)
            parts.append(piece)
            got += len(piece)
        self.offset += size
        return b"".join(parts)

    def read_view(self, size: int) -> memoryview:
        """``size`` bytes as a read-only view of a buffer of their own (at most an eighth larger),
        read in place: the only copy is the kernel's, into a buffer the reader read into before
        when nothing refers to it any more (:class:`~roboflow_core.buffers.BufferPool`). A stream
        without ``readinto`` is read with :meth:`read`.

        Unlike :meth:`read`, nothing read is damage too: the record it was to hold is missing.
        """
        check_size(size, "a record field", path=self._path, offset=self.offset)
        readinto = getattr(self._stream, "readinto", None)
        if readinto is None:
            data = self.read(size)
            if len(data) < size:
                raise self._truncated(size, 0)
            return memoryview(data)
        buffer = self._buffers.take(size).data
        got = 0
        while got < size:
            count = readinto(buffer[got:size])
            if not count:
                self.cut_short = bytes(buffer[:got])
                raise self._truncated(size, got)
            got += count
        self.offset += size
        return buffer[:size].toreadonly()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.offset = self._stream.seek(offset, whence)
        return self.offset

    def tell(self) -> int:
        return self.offset

    def _truncated(self, size: int, got: int) -> CorruptRecordingError:
        return CorruptRecordingError(
            f"truncated MCAP file: a record at offset {self.offset} needs {size} bytes, "
            f"the file ends after {got} (was the download or recording interrupted?)",
            path=str(self._path),
        )


class ChunkView(NamedTuple):
    """A chunk record's fields that reading its messages needs; ``data`` is a view of the body."""

    compression: str
    uncompressed_size: int
    data: memoryview


def read_chunk(body: memoryview, *, path: Path | str, offset: int, partial: bool = False) -> ChunkView:
    """Parse the chunk record ``body`` (at file ``offset``) without copying its data.

    Args:
        body: The record's body.
        path: Names the file in errors.
        offset: The record's offset, for errors.
        partial: ``body`` is what was written of a chunk cut short: its data is what there is.

    Raises:
        CorruptRecordingError: The data runs past the body (unless ``partial``).
        struct.error, UnicodeDecodeError: The header is cut short or its compression name is not
            UTF-8 (callers read under :func:`~roboflow_dataset.sources._storage.reading`).
    """
    _, _, size, _, name_length = _CHUNK_HEAD.unpack_from(body)
    start = _CHUNK_HEAD.size + name_length
    compression = str(body[_CHUNK_HEAD.size : start], "utf-8")
    (length,) = _U64.unpack_from(body, start)
    start += _U64.size
    if start + length > len(body) and not partial:
        raise CorruptRecordingError(
            f"the chunk at offset {offset} declares {length} bytes of records, its record holds "
            f"{max(len(body) - start, 0)}",
            path=str(path),
        )
    return ChunkView(compression, size, body[start : start + length])


def chunk_records(data: memoryview, *, whole: bool) -> Iterator[tuple[int, memoryview]]:
    """``(opcode, body)`` of the records in a chunk's (decompressed) ``data``.

    Args:
        data: The records.
        whole: Every record must be there whole (else the records up to the first one that is not,
            for what was written of a chunk cut short).

    Raises:
        ValueError: With ``whole``, a record runs past the end of the data.
    """
    pos, end = 0, len(data)
    unpack = _PREFIX.unpack_from
    while pos + _PREFIX.size <= end:
        opcode, length = unpack(data, pos)
        body_end = pos + _PREFIX.size + length
        if body_end > end:
            break
        yield opcode, data[pos + _PREFIX.size : body_end]
        pos = body_end
    if whole and pos != end:
        raise ValueError(f"the record at chunk byte {pos} runs past the chunk's {end} bytes")


def message_record(body: memoryview, channels: dict[int, Channel], path: Path | str, offset: int) -> Record:
    """``(log time, channel, payload)`` of the message record ``body``, its channel known and time in
    range; it lies in a buffer read at file ``offset``.

    The payload is a view of that buffer or a copy, as :func:`~roboflow_dataset.sources._storage.payload_of`
    decides.

    Raises:
        CorruptRecordingError: The channel was never defined, or the log time is out of range.
        struct.error: The record is too short (callers read under
            :func:`~roboflow_dataset.sources._storage.reading`).
    """
    channel_id, _, log_time, _ = _MESSAGE_HEAD.unpack_from(body)
    channel = channels.get(channel_id)
    if channel is None:
        raise CorruptRecordingError(
            f"a message near offset {offset} names channel {channel_id}, which was never defined",
            path=str(path),
        )
    check_log_time(log_time, path=path, topic=channel.topic, offset=offset)
    return log_time, channel, payload_of(body[_MESSAGE_HEAD.size :])


def _read_chunk(stream: BoundedReader, path: Path | str, index: ChunkIndex) -> memoryview:
    """The records of the chunk ``index`` points at."""
    offset = index.chunk_start_offset
    stream.seek(offset)
    opcode, length = _PREFIX.unpack(stream.read(_PREFIX.size))
    if opcode != CHUNK:
        raise CorruptRecordingError(
            f"the chunk index points at offset {offset}, where no chunk is", path=str(path)
        )
    check_size(length, "a chunk record", path=path, offset=offset)
    body = stream.read_view(length)
    with reading(path, f"read the chunk at offset {offset}"):
        chunk = read_chunk(body, path=path, offset=offset)
    data = decompress(chunk.compression, chunk.data, chunk.uncompressed_size, path=path, offset=offset)
    return memoryview(data)


def _matching(summary: Summary, topics: set[str] | None, start_ns: int | None) -> Iterable[ChunkIndex]:
    for index in summary.chunk_indexes:
        if start_ns is not None and index.message_end_time < start_ns:
            continue
        channels = index.message_index_offsets
        if topics is None or not channels or any(summary.channels[c].topic in topics for c in channels):
            yield index


def indexed_records(
    stream: BoundedReader,
    path: Path | str,
    summary: Summary,
    channels: dict[int, Channel],
    topics: set[str] | None,
    start_ns: int | None,
) -> Iterator[Record]:
    """Messages of ``topics`` (all when ``None``) at or after ``start_ns`` in log-time order (ties:
    file order), reading only the chunks whose index says they may hold some.

    Chunks are read one at a time as the merge reaches their start time, so memory holds the
    chunks whose time ranges overlap.
    """
    queue: list[tuple[int, int, int, ChunkIndex | Record]] = [
        (index.message_start_time, index.chunk_start_offset, -1, index)
        for index in _matching(summary, topics, start_ns)
    ]
    heapq.heapify(queue)
    while queue:
        _, offset, position, item = heapq.heappop(queue)
        if position >= 0:
            assert isinstance(item, tuple)
            yield item
            continue
        assert not isinstance(item, tuple)
        data = _read_chunk(stream, path, item)
        with reading(path, f"parse the chunk at offset {offset}"):
            for i, (opcode, body) in enumerate(chunk_records(data, whole=True)):
                if opcode != MESSAGE:
                    continue
                found = message_record(body, channels, path, offset)
                if (topics is None or found[1].topic in topics) and (
                    start_ns is None or found[0] >= start_ns
                ):
                    heapq.heappush(queue, (found[0], offset, i, found))
