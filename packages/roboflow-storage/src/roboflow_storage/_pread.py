"""The one positional reader of a local copy: its own offset over a descriptor, read with ``preadv``.

Both kinds of local copy read through it: a spooled file held open by its descriptor (eviction
may unlink its name meanwhile; ``roboflow_dataset``'s ``PinnedFile``) and a
:class:`~roboflow_storage.GrowingCopy`, whose readers first wait for the bytes they read next.
Each stream keeps its own position, so two iterations over one file do not disturb each other.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import IO

from roboflow_storage.errors import StorageError

__all__ = ["pread_stream"]

_BUFFER = 64 << 10


class _PreadReader(io.RawIOBase):
    """A raw, seekable reader of ``size`` bytes at ``fd``."""

    def __init__(
        self, fd: int, size: int, name: str | None, wait_past: Callable[[int], int] | None, owns_fd: bool
    ) -> None:
        super().__init__()
        self._fd = fd
        self._size = size
        self._wait_past = wait_past
        self._owns_fd = owns_fd
        self._pos = 0
        self._label = name
        if name is not None:
            self.name = name

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
        if self.closed:
            raise ValueError("read from a closed reader")
        with memoryview(buffer) as raw, raw.cast("B") as view:
            if self._pos >= self._size or not len(view):
                return 0
            available = self._size if self._wait_past is None else self._wait_past(self._pos)
            got = os.preadv(self._fd, [view[: available - self._pos]], self._pos)
        if got <= 0:
            raise StorageError(
                f"the local copy ended at byte {self._pos}, before the {available} bytes written; "
                "it was truncated on disk",
                url=self._label,
            )
        self._pos += got
        return got

    def close(self) -> None:
        if not self.closed and self._owns_fd:
            os.close(self._fd)
        super().close()


def pread_stream(
    fd: int,
    size: int,
    *,
    name: str | None = None,
    wait_past: Callable[[int], int] | None = None,
    owns_fd: bool = False,
) -> IO[bytes]:
    """A buffered, seekable binary stream of the ``size`` bytes at ``fd``, at offset 0.

    Args:
        fd: The descriptor, read with ``preadv`` at the stream's own position.
        size: The file's (final) size.
        name: What the stream (its ``name``) and its errors call the file; ``None``: no name
            (a library given the stream cannot reopen it by a name that may be gone).
        wait_past: Blocks until byte ``pos`` is written and returns the bytes there then (a
            copy still downloading); ``None``: all ``size`` bytes are there.
        owns_fd: Close ``fd`` with the stream (else the caller keeps it open and closes it).

    Reads raise :class:`StorageError` when the file holds fewer bytes than it should.
    """
    return io.BufferedReader(_PreadReader(fd, size, name, wait_past, owns_fd), buffer_size=_BUFFER)
