"""Byte buffers handed out again once nothing refers to them any more.

Writing into a fresh buffer of a few hundred KiB or more costs the kernel a page fault and the
zeroing of a page for every 4 KiB (about 2 µs each: 0.5 CPU-s per GB), since the allocator maps such
buffers anew and returns them to the system when they are freed; writing into pages written
before costs nothing. A reader that fills one buffer after another (a file read record by record,
an image decoded frame by frame) keeps its buffers in a :class:`BufferPool` and writes into the
same pages again, as soon as the values made from a buffer are gone.
"""

from __future__ import annotations

import weakref
from collections import deque

import numpy as np
from numpy.typing import NDArray

__all__ = ["BufferPool"]


class BufferPool:
    """Up to ``count`` buffers, each handed out again when everything made from it is gone.

    :meth:`take` returns a new array over a whole buffer, whose base is a memoryview of the buffer:
    everything made from that array (slices, memoryviews, arrays over them) keeps it alive, numpy's
    views included (they stop at it, as its base is not an array). The pool holds a weak reference
    to it and hands the buffer out again once that reference is dead.

    A buffer is handed out for a size it exceeds by at most an eighth, so a view of a few bytes
    never keeps a much larger buffer alive; new ones get a sixteenth to spare (pages never written
    cost nothing), so that sizes that vary a little reuse each other's buffers.

    Not thread-safe: one thread takes buffers (the arrays may be dropped by any).

    Args:
        count: How many buffers are kept (at least as many as are in use at once, for them to be
            reused).
    """

    def __init__(self, count: int) -> None:
        self._kept: deque[tuple[NDArray[np.uint8], weakref.ref[NDArray[np.uint8]]]] = deque(maxlen=count)

    def take(self, size: int) -> NDArray[np.uint8]:
        """A writable 1-D ``uint8`` array of at least ``size`` bytes (at most an eighth more), not
        initialized."""
        kept = self._kept
        for i, (buffer, user) in enumerate(kept):  # the least recently taken first
            if size <= len(buffer) <= size + size // 8 and user() is None:
                del kept[i]
                break
        else:
            buffer = np.empty(size + size // 16, np.uint8)
        array = np.frombuffer(buffer.data, np.uint8)
        kept.append((buffer, weakref.ref(array)))
        return array
