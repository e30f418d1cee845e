"""Download one object into a local file with several ranged GETs in flight.

The object is cut into parts of about ``part_size`` bytes (``size / part_size`` rounded, at least
one, of equal size, so no small tail costs a request of its own); ``concurrency`` parts stream at once, each
straight into its place in the file (``os.pwrite``), so memory holds one stream chunk per part in
flight whatever the object's size. A part whose stream breaks after some bytes arrived resumes
from where it stopped (the request itself is retried by obstore, which cannot retry a body).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

from roboflow_core import telemetry
from roboflow_storage.errors import ObjectNotFoundError, StorageError

RangeStream = Callable[[int, int], Iterable[bytes]]
"""Streams bytes ``[start, end)`` of one object in chunks."""


class Stopped(Exception):
    """The download was stopped (another part failed, or its reader went away) between chunks."""


def _write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class Part:
    """Streams bytes ``[start, end)`` of an object into their place in a file, in order.

    A stream that breaks after making progress is resumed from where it stopped, at most
    ``resumes`` times; a request that fails outright is not (obstore already retried it).

    Args:
        stream: Streams a byte range of the object.
        fd: The file, open for writing.
        stop: Checked between chunks: when set, :class:`Stopped` is raised.
        resumes: How often a broken stream may be resumed.
        url: The object's URL, for errors.
        progress: Called with the end of the bytes written so far after each chunk.
    """

    def __init__(
        self,
        stream: RangeStream,
        fd: int,
        stop: threading.Event,
        *,
        resumes: int,
        url: str,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self._stream = stream
        self._fd = fd
        self._stop = stop
        self._resumes = resumes
        self._url = url
        self._progress = progress

    def __call__(self, start: int, end: int) -> None:
        """Write ``[start, end)`` (time counted as the current job's ``download`` stage).

        Raises:
            Stopped: ``stop`` was set.
            StorageError: The stream failed (beyond its resumes) or gave the wrong bytes.
        """
        with telemetry.timed("download"):
            self._write(start, end)

    def _write(self, start: int, end: int) -> None:
        pos, resumed = start, 0
        while True:
            before = pos
            try:
                for chunk in self._stream(pos, end):
                    if self._stop.is_set():
                        raise Stopped
                    if pos + len(chunk) > end:
                        raise StorageError(
                            f"got more bytes than asked for {start}-{end}; the object changed", url=self._url
                        )
                    _write_all(self._fd, chunk, pos)
                    pos += len(chunk)
                    if self._progress is not None:
                        self._progress(pos)
                if pos < end:
                    raise StorageError(
                        f"bytes {start}-{end}: the answer ended at {pos}; the object changed", url=self._url
                    )
                return
            except ObjectNotFoundError:
                raise
            except StorageError:
                # only a stream that broke after making progress is resumed: a request that failed
                # outright was already retried by obstore
                if pos == before or resumed >= self._resumes or self._stop.is_set():
                    raise
                resumed += 1


def part_bounds(size: int, part_size: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each part: ``size / part_size`` rounded (at least one) parts of equal size."""
    if size <= 0:
        return []
    count = max(1, (size + part_size // 2) // part_size)
    return [(size * i // count, size * (i + 1) // count) for i in range(count)]


def download(
    stream: RangeStream,
    size: int,
    target: Path,
    *,
    part_size: int,
    concurrency: int,
    resumes: int,
    url: str,
) -> None:
    """Write the ``size`` bytes of an object into ``target`` (created 0600; never through a link).

    Args:
        stream: Streams a byte range of the object (error mapping is its job; a change of the
            object between parts should fail there, e.g. through ``If-Match``).
        size: The object's size.
        target: The local file.
        part_size: About how many bytes per ranged GET (see :func:`part_bounds`).
        concurrency: Parts streamed at once (1: one part after the other).
        resumes: How often one part may resume after its stream broke midway.
        url: The object's URL, for errors.

    Raises:
        StorageError: A part failed (the others are stopped), or the object changed size.
    """
    if part_size <= 0 or concurrency <= 0:
        raise ValueError("part_size and concurrency must be positive")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, size)
        stop = threading.Event()
        part = Part(stream, fd, stop, resumes=resumes, url=url)
        bounds = part_bounds(size, part_size)
        if concurrency == 1 or len(bounds) <= 1:
            for start, end in bounds:
                part(start, end)
            return
        with ThreadPoolExecutor(min(concurrency, len(bounds)), thread_name_prefix="roboflow-get") as pool:
            futures = [pool.submit(telemetry.in_context(part), start, end) for start, end in bounds]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            error = next((e for f in futures if f in done and (e := f.exception()) is not None), None)
            if error is not None:
                stop.set()
                for future in futures:
                    future.cancel()
                raise error
    finally:
        os.close(fd)
