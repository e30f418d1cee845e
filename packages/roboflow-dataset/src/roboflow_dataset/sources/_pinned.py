"""A local file held open, read through any number of independent streams.

A spooled copy of a remote recording may be evicted from the buffer (its name unlinked) while it
is being read; an open descriptor keeps its content readable. Each stream keeps its own position
and reads with ``os.pread``, so two iterations over one recording do not disturb each other.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO

__all__ = ["PinnedFile"]

_BUFFER = 64 << 10


class _PositionalReader(io.RawIOBase):
    """A raw, seekable reader over a shared descriptor that it never closes."""

    def __init__(self, fd: int, size: int) -> None:
        super().__init__()
        self._fd = fd
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = os.pread(self._fd, len(buffer), self._pos)
        memoryview(buffer).cast("B")[: len(data)] = data
        self._pos += len(data)
        return len(data)


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
        return io.BufferedReader(_PositionalReader(self._fd, self._size), buffer_size=_BUFFER)

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
