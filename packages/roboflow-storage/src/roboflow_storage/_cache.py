"""A bounded, least-recently-used cache of whole objects as local files."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from roboflow_core.workdirs import PrivateDir
from roboflow_storage._settings import DEFAULT_BUFFER_MAX_BYTES
from roboflow_storage.errors import StorageError

SPOOL_PREFIX = "roboflow-spool-"
"""Name prefix of a cache's private directory under its root."""
_PARTIAL = ".partial"


class LruCache:
    """Local copies of objects, keyed by URL and etag, evicted least recently used first.

    A changed object (new etag) gets a new entry; the old one ages out. The files live in a
    directory private to this cache (:class:`~roboflow_core.workdirs.PrivateDir`
    ``ROOT/roboflow-spool-*``, 0700, removed when the cache is closed or the process exits; what
    killed processes left is swept when a cache opens), each created 0600 with ``O_EXCL |
    O_NOFOLLOW``: the cache never adopts a file it did not write nor writes through a link.
    Files are written under a temporary name and renamed into place when complete, so a crash
    never leaves a truncated entry. Evicting an entry unlinks its file: a reader that has it
    open keeps reading, but a path handed out earlier may vanish, so open it right away.

    Args:
        root: Where the cache makes its private directory (created 0700 if missing).
        max_bytes: Bound on the total size of the files.
    """

    def __init__(self, root: str | os.PathLike[str], *, max_bytes: int = DEFAULT_BUFFER_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        try:
            self._private = PrivateDir(root, SPOOL_PREFIX)
        except OSError as err:
            raise StorageError(f"cannot create the local buffer under {root}: {err.strerror or err}") from err
        self.directory = self._private.path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, int] = OrderedDict()
        self._inflight: dict[str, threading.Event] = {}

    def close(self) -> None:
        """Remove the cache's directory and every file in it. Safe to call twice."""
        self._private.close()

    @property
    def size(self) -> int:
        """Total bytes of the cached files."""
        with self._lock:
            return sum(self._entries.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @staticmethod
    def entry_name(url: str, etag: str | None) -> str:
        """The file name of an entry: a hash of URL and etag, keeping the URL's suffix."""
        digest = hashlib.sha256(f"{url}\0{etag or ''}".encode()).hexdigest()[:32]
        return digest + Path(url).suffix

    def get_or_fetch(self, url: str, etag: str | None, size: int, fetch: Callable[[Path], None]) -> Path:
        """The local file of ``url`` at ``etag``, fetched by ``fetch(path)`` when not cached.

        Args:
            url: The object's URL.
            etag: The object's etag (a new etag is a new entry).
            size: The object's size, to make room before fetching.
            fetch: Writes the whole object to the path it is given.

        Raises:
            StorageError: The object is larger than the whole cache, or the fetch wrote a
                different number of bytes than ``size``.
        """
        found = self.reserve(url, etag, size)
        if isinstance(found, Path):
            return found
        try:
            fetch(found.partial)
            return found.commit()
        finally:
            found.abandon()  # nothing left to do after a commit

    def reserve(self, url: str, etag: str | None, size: int) -> Path | Reservation:
        """The cached file of ``url`` at ``etag``, or the right to write it.

        While another thread writes the same entry, this waits for it: its copy is returned, or
        this takes over if it failed. A :class:`Reservation` marks the entry in flight and has
        made room for ``size`` bytes; end it with :meth:`Reservation.commit` or
        :meth:`Reservation.abandon`.

        Args:
            url: The object's URL.
            etag: The object's etag (a new etag is a new entry).
            size: The object's size.

        Raises:
            StorageError: The object is larger than the whole cache.
        """
        name = self.entry_name(url, etag)
        path = self.directory / name
        while True:
            with self._lock:
                if name in self._entries and path.exists():
                    self._entries.move_to_end(name)
                    os.utime(path)
                    return path
                running = self._inflight.get(name)
                if running is None:
                    self._inflight[name] = threading.Event()
                    break
            running.wait()  # another thread fetches it (a prefetch): use its copy, or retry if it failed
        reservation = Reservation(self, name, url, size)
        try:
            if size > self.max_bytes:
                raise StorageError(
                    f"object of {size} bytes does not fit the local buffer of {self.max_bytes} bytes; "
                    "raise ROBOFLOW_BUFFER_MAX_BYTES or point ROBOFLOW_BUFFER_DIR at a larger disk",
                    transient=False,
                    url=url,
                )
            with self._lock:
                self._evict(size)
            self.directory.mkdir(mode=0o700, exist_ok=True)  # a tmp cleaner may have removed it
            reservation.create_partial()
        except BaseException:
            reservation.abandon()
            raise
        return reservation

    def _settle(self, name: str, size: int | None) -> None:
        """Register entry ``name`` of ``size`` bytes (None: none) and clear its in-flight mark."""
        with self._lock:
            if size is not None:
                self._entries[name] = size
                self._entries.move_to_end(name)
                self._evict(0, keep=name)
            self._inflight.pop(name).set()

    def _evict(self, incoming: int, keep: str | None = None) -> None:
        """Drop least recently used entries until ``incoming`` more bytes fit (lock held)."""
        total = sum(self._entries.values())
        for name in list(self._entries):
            if total + incoming <= self.max_bytes:
                break
            if name == keep:
                continue
            total -= self._entries.pop(name)
            (self.directory / name).unlink(missing_ok=True)


class Reservation:
    """One cache entry being written, from :meth:`LruCache.reserve` (one thread at a time).

    Write the object to :attr:`partial`, then :meth:`commit`; on any failure :meth:`abandon`.
    Until then, others asking for the entry wait.

    Attributes:
        path: Where the entry will be.
        partial: The temporary file to write (renamed to ``path`` by :meth:`commit`).
        url: The object's URL.
        size: The object's size.
    """

    def __init__(self, cache: LruCache, name: str, url: str, size: int) -> None:
        self._cache = cache
        self._name = name
        self.path = cache.directory / name
        self.partial = self.path.with_name(f"{name}.{threading.get_ident()}{_PARTIAL}")
        self.url = url
        self.size = size
        self._ended = False
        self._created = False

    def create_partial(self) -> None:
        """Create :attr:`partial`, empty and 0600, failing if anything (a file, a link) is there.

        Raises:
            StorageError: It cannot be created.
        """
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            os.close(os.open(self.partial, flags, 0o600))
            self._created = True
        except OSError as err:
            raise StorageError(
                f"cannot create the local copy {self.partial}: {err.strerror}", url=self.url
            ) from err

    def commit(self) -> Path:
        """Move the complete :attr:`partial` file into the cache; returns :attr:`path`.

        Raises:
            StorageError: The file does not hold ``size`` bytes (the reservation stays open:
                :meth:`abandon` it).
        """
        if self._ended:
            raise ValueError("the reservation already ended")
        got = self.partial.stat().st_size
        if got != self.size:
            raise StorageError(f"fetched {got} bytes, expected {self.size}; the object changed", url=self.url)
        self.partial.replace(self.path)
        self._ended = True
        self._cache._settle(self._name, self.size)
        return self.path

    def abandon(self) -> None:
        """Remove :attr:`partial` and give the entry up; does nothing once ended."""
        if self._ended:
            return
        self._ended = True
        try:
            if self._created:
                self.partial.unlink(missing_ok=True)
        finally:
            self._cache._settle(self._name, None)
