"""Byte buffers handed out again once nothing refers to them any more.

Writing into a fresh buffer of a few hundred KiB or more costs the kernel a page fault and the
zeroing of a page for every 4 KiB (about 2 µs each: 0.5 CPU-s per GB): the allocator maps such
buffers anew and gives them back to the system when they are freed. Writing into pages written
before costs nothing. A reader that fills one buffer after another (a file read record by record,
an image decoded frame by frame) keeps its buffers in a :class:`BufferPool` and writes into the
same pages again, as soon as the values made from a buffer are gone.
"""

from __future__ import annotations

import weakref
from collections import deque

import numpy as np
from numpy.typing import NDArray

__all__ = ["MIN_POOLED", "BufferPool"]

MIN_POOLED = 64 << 10
"""Smaller buffers are not kept: the allocator reuses their memory itself, without page faults."""


class BufferPool:
    """Buffers handed out again when everything made from them is gone, up to ``count`` of them and
    ``max_bytes`` in all.

    :meth:`take` returns a new array over a whole buffer, whose base is a memoryview of the buffer:
    everything made from that array (slices, memoryviews, arrays over them) keeps it alive, numpy's
    views included (they stop at it, as its base is not an array). The pool holds a weak reference
    to it and hands the buffer out again once that reference is dead.

    A buffer is handed out for a size it exceeds by at most an eighth, so a view of a few bytes
    never keeps a much larger buffer alive; new ones get a sixteenth to spare (pages never written
    cost nothing), so that sizes that vary a little reuse each other's buffers. Past ``count`` or
    ``max_bytes``, the least recently taken buffers are let go (those still in use are freed with
    their last view, as without a pool); the pool never holds more than that.

    Not thread-safe: one thread takes buffers (the arrays may be dropped by any).

    Args:
        count: How many buffers are kept (at least as many as are in use at once, for them to be
            reused).
        max_bytes: How many bytes of buffers are kept.
    """

    def __init__(self, count: int, max_bytes: int) -> None:
        self._count = count
        self._max_bytes = max_bytes
        self._bytes = 0
        self._kept: deque[tuple[NDArray[np.uint8], weakref.ref[NDArray[np.uint8]]]] = deque()

    @property
    def nbytes(self) -> int:
        """The bytes of the buffers the pool holds (in use or not)."""
        return self._bytes

    def take(self, size: int) -> NDArray[np.uint8]:
        """A writable 1-D ``uint8`` array of at least ``size`` bytes (at most an eighth more), not
        initialized."""
        if size < MIN_POOLED:
            return np.empty(size, np.uint8)
        kept = self._kept
        for i, (buffer, user) in enumerate(kept):  # the least recently taken first
            if size <= len(buffer) <= size + size // 8 and user() is None:
                del kept[i]
                break
        else:
            buffer = np.empty(size + size // 16, np.uint8)
            if len(buffer) > self._max_bytes:  # larger than the pool: handed out, not kept
                return np.frombuffer(buffer.data, np.uint8)
            self._bytes += len(buffer)
            while kept and (len(kept) >= self._count or self._bytes > self._max_bytes):
                self._bytes -= len(kept.popleft()[0])
        array = np.frombuffer(buffer.data, np.uint8)
        kept.append((buffer, weakref.ref(array)))
        return array
