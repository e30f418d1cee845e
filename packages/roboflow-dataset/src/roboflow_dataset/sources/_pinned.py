"""A local file held open, read through any number of independent streams.

A spooled copy of a remote recording may be evicted from the buffer (its name unlinked) while it
is being read; an open descriptor keeps its content readable. Each stream keeps its own position
and reads with ``os.preadv`` (:func:`roboflow_storage.pread_stream`, the reader a growing copy
uses too), so two iterations over one recording do not disturb each other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from roboflow_storage import pread_stream

__all__ = ["PinnedFile"]


class PinnedFile:
    """``path`` opened once; :meth:`open` gives independent buffered streams over it.

    Args:
        path: The file; it may be unlinked once this is constructed.
    """

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._size = os.fstat(self._fd).st_size

    def open(self) -> IO[bytes]:
        """A new binary stream at offset 0 (closing it leaves the file open)."""
        if self._fd < 0:
            raise ValueError("the pinned file is closed")
        return pread_stream(self._fd, self._size)

    def reopenable(self, path: Path) -> Path:
        """A name that opens this file while it is held, even once unlinked (``/proc/self/fd``
        where the system has it; else ``path``, the file's own name)."""
        held = Path(f"/proc/self/fd/{self._fd}")
        return held if held.exists() else path

    def close(self) -> None:
        """Close the descriptor (streams opened before must not be read afterwards)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
