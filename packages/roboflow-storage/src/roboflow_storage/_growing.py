"""A local copy of a remote object that can be read while it downloads.

One daemon thread streams the object in order, with a single GET, into the partial file of a
:class:`~roboflow_storage.LruCache` entry (a stream that breaks midway resumes where it stopped)
and publishes how many bytes are there. Readers (:func:`~roboflow_storage._pread.pread_stream`)
read with ``os.preadv`` from a descriptor opened
when the download started, which stays valid after the file is renamed into the cache and after
it is evicted, and wait only for the bytes they read next.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType
from typing import IO

from roboflow_core import telemetry
from roboflow_storage._cache import Reservation
from roboflow_storage._download import Part, RangeStream, Stopped
from roboflow_storage._pread import pread_stream
from roboflow_storage.errors import StorageError

__all__ = ["GrowingCopy"]


class _Progress:
    """What the download publishes, under one condition: bytes written, final path or error."""

    def __init__(self, size: int, url: str, path: Path | None = None) -> None:
        self.cond = threading.Condition()
        self.size = size
        self.url = url
        self.available = size if path is not None else 0
        self.path = path
        self.error: StorageError | None = None

    def advance(self, available: int) -> None:
        with self.cond:
            self.available = available
            self.cond.notify_all()

    def fail(self, error: StorageError) -> None:
        """Record the first error (a close may have recorded one already) and wake every waiter."""
        with self.cond:
            if self.error is None:
                self.error = error
            self.cond.notify_all()

    def wait_past(self, pos: int) -> int:
        """Block until byte ``pos`` is written; returns the bytes available then.

        Raises:
            StorageError: The download failed or was stopped before reaching ``pos``.
        """
        with self.cond:
            while self.available <= pos and self.error is None:
                self.cond.wait()
            if self.available > pos:  # bytes written before a failure stay readable
                return self.available
            assert self.error is not None
            raise self.error

    def wait_done(self) -> Path:
        with self.cond:
            while self.path is None and self.error is None:
                self.cond.wait()
            if self.path is None:
                assert self.error is not None
                raise self.error
            return self.path


class GrowingCopy:
    """A local copy of an object, readable while it is still downloading.

    Get one from :meth:`Spool.growing_copy <roboflow_storage.Spool.growing_copy>`. Each
    :meth:`open` gives an independent seekable reader; a read blocks only until the bytes it
    starts at have arrived. :meth:`close` (or leaving the ``with`` block) stops an unfinished
    download and discards its partial file; readers opened before keep their own descriptor
    until they are closed.

    Attributes:
        size: The object's size in bytes.
    """

    def __init__(self, fd: int, progress: _Progress) -> None:
        self.size = progress.size
        self._fd = fd
        self._progress = progress
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def of_file(cls, path: Path, *, url: str) -> GrowingCopy:
        """A complete copy over the file at ``path`` (a local object or a cached entry).

        Raises:
            OSError: The file cannot be opened.
        """
        fd = os.open(path, os.O_RDONLY)
        return cls(fd, _Progress(os.fstat(fd).st_size, url, path))

    @classmethod
    def download(cls, reservation: Reservation, stream: RangeStream, *, resumes: int) -> GrowingCopy:
        """Start downloading into ``reservation`` in a daemon thread; the copy grows as bytes arrive.

        Args:
            reservation: The cache entry to write (committed when complete, else abandoned).
            stream: Streams a byte range of the object (error mapping is its job).
            resumes: How often a stream that broke after making progress is resumed.

        Raises:
            StorageError: The partial file cannot be created.
        """
        url = reservation.url
        fds: list[int] = []
        try:
            # the cache created the partial file (0600, never through a link): open it, no more
            fds.append(
                os.open(reservation.partial, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            )
            fds.append(os.open(reservation.partial, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC))
            copy = cls(fds[1], _Progress(reservation.size, url))
            part = Part(stream, fds[0], copy._stop, resumes=resumes, url=url, progress=copy._progress.advance)
            copy._thread = threading.Thread(
                target=telemetry.in_context(copy._run),
                args=(reservation, part, fds[0]),
                name="roboflow-growing-copy",
                daemon=True,
            )
            copy._thread.start()
        except BaseException as err:
            for fd in fds:
                os.close(fd)
            reservation.abandon()
            if isinstance(err, OSError):
                reason = f"cannot create the local copy {reservation.partial}: {err.strerror}"
                raise StorageError(reason, url=url) from err
            raise
        return copy

    def _run(self, reservation: Reservation, part: Part, fd: int) -> None:
        """The download thread: stream everything, then commit the entry, or abandon it."""
        error: StorageError | None = None
        try:
            try:
                if reservation.size:
                    part(0, reservation.size)
            finally:
                os.close(fd)
            with self._progress.cond:  # a close either comes before the commit or finds it done
                if self._stop.is_set():
                    raise Stopped
                self._progress.path = reservation.commit()
                self._progress.cond.notify_all()
        except Stopped:
            pass  # close() recorded the error already
        except StorageError as err:
            error = err
        except Exception as err:
            reason = f"writing the local copy {reservation.partial} failed: {err}"
            error = StorageError(reason, url=reservation.url)
            error.__cause__ = err
        finally:
            try:
                reservation.abandon()  # does nothing after the commit
            finally:
                if error is not None:  # only now: whoever sees the error finds no partial file left
                    self._progress.fail(error)

    @property
    def available(self) -> int:
        """Bytes downloaded so far, from the start of the object (``size`` once complete)."""
        with self._progress.cond:
            return self._progress.available

    @property
    def done(self) -> bool:
        """Whether the copy is complete and in the cache (:meth:`wait` returns at once)."""
        with self._progress.cond:
            return self._progress.path is not None

    def open(self) -> IO[bytes]:
        """A new seekable binary reader at offset 0; reads wait for bytes still downloading.

        Raises:
            ValueError: The copy is closed.
        """
        with self._progress.cond:
            if self._fd < 0:
                raise ValueError("the growing copy is closed")
            fd = os.dup(self._fd)
        progress = self._progress
        return pread_stream(fd, progress.size, name=progress.url, wait_past=progress.wait_past, owns_fd=True)

    def wait(self) -> Path:
        """Block until the download is complete; returns the cached file (a local object: itself).

        The path is the cache's: it may be evicted later, so open it right away.

        Raises:
            StorageError: The download failed, or the copy was closed before it finished.
        """
        return self._progress.wait_done()

    def close(self) -> None:
        """Stop an unfinished download (its partial file is removed) and close the descriptor.

        Readers opened before stay usable up to the bytes already there. Calling it again does
        nothing.
        """
        with self._progress.cond:
            if self._progress.path is None and self._progress.error is None:
                self._stop.set()
                self._progress.error = StorageError(
                    "the copy was closed before its download finished", url=self._progress.url
                )
                self._progress.cond.notify_all()
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> GrowingCopy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GrowingCopy({self._progress.url!r}, size={self.size}, available={self.available})"
