"""A seekable, read-ahead file over ranged GETs, so remote recordings stream without a download."""

from __future__ import annotations

import io
import os
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from roboflow_storage.errors import StorageError

RangeFetch = Callable[[int, int], bytes]
"""Reads bytes ``[start, end)`` of one object."""


class ObjectReader(io.BufferedIOBase):
    """A read-only binary file over one object, read in blocks with background read-ahead.

    The object is cut into ``block_size`` blocks fetched by ranged GETs. While reading
    sequentially, the next ``read_ahead`` blocks are fetched in background threads, so network
    latency overlaps decoding; a seek elsewhere fetches only what is read there until reading
    crosses into the next block again. At most ``read_ahead + 2`` blocks are held in memory.

    Args:
        fetch: Reads a byte range of the object (retries and error mapping are its job).
        size: Size of the object in bytes.
        name: The object's URL, for ``repr`` and errors.
        block_size: Bytes per ranged GET.
        read_ahead: Blocks fetched ahead while reading sequentially (0 disables it).
    """

    def __init__(
        self, fetch: RangeFetch, size: int, *, name: str, block_size: int = 8 << 20, read_ahead: int = 2
    ) -> None:
        super().__init__()
        if block_size <= 0 or read_ahead < 0:
            raise ValueError("block_size must be > 0 and read_ahead >= 0")
        self.name = name
        self._fetch = fetch
        self._size = size
        self._block_size = block_size
        self._read_ahead = read_ahead
        self._pos = 0
        self._last_block = -1
        self._blocks: OrderedDict[int, Future[bytes]] = OrderedDict()
        self._pool = ThreadPoolExecutor(max(read_ahead, 1), thread_name_prefix="roboflow-read")

    def __repr__(self) -> str:
        return f"ObjectReader({self.name!r}, size={self._size})"

    @property
    def size(self) -> int:
        """Size of the object in bytes."""
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check_open()
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError(f"negative seek position {base + offset} in {self.name}")
        self._pos = base + offset
        return self._pos

    def read(self, size: int | None = -1, /) -> bytes:
        self._check_open()
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        parts: list[memoryview] = []
        while self._pos < end:
            index, offset = divmod(self._pos, self._block_size)
            block = memoryview(self._block(index))
            piece = block[offset : offset + end - self._pos]
            if not piece:
                raise StorageError(f"object ended at {self._pos} before its size {self._size}", url=self.name)
            parts.append(piece)
            self._pos += len(piece)
        return b"".join(parts)

    def read1(self, size: int = -1, /) -> bytes:
        return self.read(size)

    def readinto(self, buffer: bytearray | memoryview, /) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Drop the buffered blocks and stop the read-ahead threads."""
        if not self.closed:
            for future in self._blocks.values():
                future.cancel()
            self._blocks.clear()
            self._pool.shutdown(wait=False, cancel_futures=True)
        super().close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"I/O operation on closed reader {self.name}")

    def _submit(self, index: int) -> Future[bytes]:
        future = self._blocks.get(index)
        if future is None:
            start = index * self._block_size
            future = self._pool.submit(self._fetch, start, min(start + self._block_size, self._size))
            self._blocks[index] = future
        self._blocks.move_to_end(index)
        return future

    def _block(self, index: int) -> bytes:
        future = self._submit(index)
        if index == self._last_block + 1:
            last = (self._size - 1) // self._block_size
            for ahead in range(index + 1, min(index + self._read_ahead, last) + 1):
                self._submit(ahead)
            self._blocks.move_to_end(index)
        self._last_block = index
        while len(self._blocks) > self._read_ahead + 2:
            _, old = self._blocks.popitem(last=False)
            old.cancel()
        return future.result()
