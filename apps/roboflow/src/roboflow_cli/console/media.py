"""Serving an object (a video) from a dataset in pieces: HTTP range requests, never the whole file at once.

A ``Range: bytes=a-b`` request gets ``206`` with at most :data:`MAX_PART` bytes (a shorter part
than asked is allowed; browsers ask again from where it ended); no range gets ``200`` streamed in
parts. The bytes come from :meth:`Storage.get_range`, so a video in an object store is read with
ranged GETs and never copied.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from litestar.exceptions import HTTPException
from litestar.response import Response, Stream

from roboflow_storage import Storage

__all__ = ["MAX_PART", "stream_object"]

MAX_PART = 4 << 20
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def stream_object(storage: Storage, key: str, range_header: str | None) -> Response[bytes] | Stream:
    """The object at ``key``: its ``range_header`` part (``206``), or all of it streamed (``200``).

    Raises:
        HTTPException: ``416`` for a range that is malformed, multiple or past the end.
    """
    size = storage.head(key).size
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
    if range_header is None:
        headers["Content-Length"] = str(size)
        return Stream(_parts(storage, key, 0, size), media_type="video/mp4", headers=headers)
    start, end = _parse(range_header.strip(), size)
    end = min(end, start + MAX_PART)
    body = storage.get_range(key, start, end)
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return Response(body, status_code=206, media_type="video/mp4", headers=headers)


def _parse(header: str, size: int) -> tuple[int, int]:
    """``(start, end)``, end exclusive, of a single ``bytes=`` range."""
    match = _RANGE.match(header)
    if match is None or not (match.group(1) or match.group(2)):
        raise _unsatisfiable(size, "only one 'bytes=start-end' range is served")
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last N bytes
        start, end = max(size - int(last), 0), size
    else:
        start = int(first)
        end = min(int(last) + 1, size) if last else size
    if start >= size or end <= start:
        raise _unsatisfiable(size, f"range {header!r} is outside the {size} bytes of the file")
    return start, end


def _unsatisfiable(size: int, detail: str) -> HTTPException:
    return HTTPException(status_code=416, detail=detail, headers={"Content-Range": f"bytes */{size}"})


def _parts(storage: Storage, key: str, start: int, end: int) -> Iterator[bytes]:
    while start < end:
        stop = min(start + MAX_PART, end)
        yield storage.get_range(key, start, stop)
        start = stop
