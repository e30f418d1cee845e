"""Bounded reading of MCAP records: reads capped per record, chunks decompressed within their
declared size, and the indexed (log-time order) read of chunks.

mcap's own readers trust the lengths a file declares (a chunk's ``uncompressed_size`` becomes the
output buffer; a record length is read as is up to 4 GiB); these helpers put
:mod:`~roboflow_dataset.sources._limits` in front of every such length.
"""

from __future__ import annotations

import dataclasses
import heapq
import io
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from mcap.data_stream import ReadDataStream
from mcap.opcode import Opcode
from mcap.records import Chunk, ChunkIndex, McapRecord
from mcap.records import Message as McapMessage
from mcap.stream_reader import breakup_chunk
from mcap.summary import Summary

from roboflow_core.errors import CorruptRecordingError
from roboflow_dataset.sources._limits import check_log_time, check_size, decompress
from roboflow_dataset.sources._model import Channel
from roboflow_dataset.sources._storage import Record, reading

__all__ = ["BoundedReader", "chunk_records", "indexed_records", "message_record"]

_PREFIX = struct.Struct("<BQ")  # opcode, record length


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
                raise CorruptRecordingError(
                    f"truncated MCAP file: a record at offset {self.offset} needs {size} bytes, "
                    f"the file ends after {got} (was the download or recording interrupted?)",
                    path=str(self._path),
                )
            parts.append(piece)
            got += len(piece)
        self.offset += size
        return b"".join(parts)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.offset = self._stream.seek(offset, whence)
        return self.offset

    def tell(self) -> int:
        return self.offset


def chunk_records(chunk: Chunk, path: Path | str, offset: int) -> list[McapRecord]:
    """The records inside ``chunk`` (at file ``offset``), decompressed within its declared size."""
    data = decompress(chunk.compression, chunk.data, chunk.uncompressed_size, path=path, offset=offset)
    with reading(path, f"parse the chunk at offset {offset}"):
        return breakup_chunk(dataclasses.replace(chunk, compression="", data=data))


def message_record(
    message: McapMessage, channels: dict[int, Channel], path: Path | str, offset: int
) -> Record:
    """``(log time, channel, payload)`` of a message record, its channel known and time in range."""
    channel = channels.get(message.channel_id)
    if channel is None:
        raise CorruptRecordingError(
            f"a message near offset {offset} names channel {message.channel_id}, which was never defined",
            path=str(path),
        )
    check_log_time(message.log_time, path=path, topic=channel.topic, offset=offset)
    return message.log_time, channel, message.data


def _read_chunk(stream: BoundedReader, path: Path | str, index: ChunkIndex) -> list[McapRecord]:
    offset = index.chunk_start_offset
    stream.seek(offset)
    opcode, length = _PREFIX.unpack(stream.read(_PREFIX.size))
    if opcode != Opcode.CHUNK:
        raise CorruptRecordingError(
            f"the chunk index points at offset {offset}, where no chunk is", path=str(path)
        )
    check_size(length, "a chunk record", path=path, offset=offset)
    body = stream.read(length)
    with reading(path, f"read the chunk at offset {offset}"):
        chunk = Chunk.read(ReadDataStream(io.BytesIO(body)))
    return chunk_records(chunk, path, offset)


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
        assert isinstance(item, ChunkIndex)
        for i, record in enumerate(_read_chunk(stream, path, item)):
            if not isinstance(record, McapMessage):
                continue
            found = message_record(record, channels, path, offset)
            if (topics is None or found[1].topic in topics) and (start_ns is None or found[0] >= start_ns):
                heapq.heappush(queue, (found[0], offset, i, found))
