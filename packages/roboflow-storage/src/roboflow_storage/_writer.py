"""A streaming upload that becomes visible only when closed, and is aborted on error."""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from types import TracebackType
from typing import TYPE_CHECKING, Self

from roboflow_storage._translate import translate_errors

if TYPE_CHECKING:
    from obstore import WritableFile


class _Aborted(Exception):
    """Handed to obstore's ``__exit__`` to make it abort rather than complete the upload."""


class ObjectWriter:
    """A write-only binary file that uploads one object as it is written.

    Data is buffered in parts of ``part_size`` bytes; once more than one part has been written
    they are sent as a multipart upload, several parts at a time. Nothing is visible at the URL
    until :meth:`close` completes the upload (or a single PUT for small objects), and an existing
    object there stays readable until then. Leaving a ``with`` block by an exception, or calling
    :meth:`abort`, aborts the multipart upload, so no partial object is ever visible.

    Not an ``io.IOBase``: those complete on garbage collection, this one never does.
    """

    def __init__(self, file: WritableFile, *, url: str, secrets: Collection[str] = ()) -> None:
        self.name = url
        self._file = file
        self._secrets = secrets
        self._written = 0
        self._done = False

    def __repr__(self) -> str:
        return f"ObjectWriter({self.name!r}, written={self._written})"

    @property
    def closed(self) -> bool:
        """Whether the upload was completed or aborted."""
        return self._done

    def writable(self) -> bool:
        """Always true."""
        return True

    def tell(self) -> int:
        """Bytes written so far."""
        return self._written

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        """Append ``data``; full parts start uploading in the background.

        Raises:
            StorageError: An upload failed after retries; the writer is aborted.
        """
        if self._done:
            raise ValueError(f"write to a closed writer {self.name}")
        try:
            with translate_errors(self.name, "upload", self._secrets):
                count = self._file.write(data)
        except BaseException:
            self.abort()
            raise
        self._written += count
        return count

    def flush(self) -> None:
        """No-op: parts are sent as they fill; visibility comes only with :meth:`close`."""

    def close(self) -> None:
        """Upload what is buffered and complete the upload, making the object visible.

        Raises:
            StorageError: Completing failed after retries; the upload is aborted.
        """
        if self._done:
            return
        try:
            with translate_errors(self.name, "complete upload", self._secrets):
                self._file.close()
        except BaseException:
            self.abort()
            raise
        self._done = True

    def abort(self) -> None:
        """Abandon the upload: nothing becomes visible and uploaded parts are discarded."""
        if self._done:
            return
        self._done = True
        # a failed abort leaves only invisible parts behind, for the bucket's lifecycle rules to expire
        with contextlib.suppress(Exception):
            self._file.__exit__(_Aborted, _Aborted(self.name), None)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
