"""The spool: local copies of remote objects, for readers that need a real file.

:class:`Spool` is a bounded :class:`~roboflow_storage.LruCache` plus the two ways into it: a
whole-object download by parallel ranged GETs (:meth:`Spool.local_copy`) and a copy readable
while one GET streams it in (:meth:`Spool.growing_copy`). It only uses a
:class:`~roboflow_storage.Storage`'s object verbs (``head``, ``stream_range``), so a store knows
nothing of local files. :func:`default_spool` is the process-wide one of the environment
(``ROBOFLOW_BUFFER_*``, ``ROBOFLOW_DOWNLOAD_*``); the readers that spool (``open_source``,
``open_streamed``, ``prefetch_recording``, the conversions) take a caller's own as ``spool=``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from roboflow_storage._cache import LruCache, Reservation
from roboflow_storage._download import download
from roboflow_storage._growing import GrowingCopy
from roboflow_storage._info import ObjectInfo
from roboflow_storage._settings import DOWNLOAD_CONCURRENCY, DOWNLOAD_PART_SIZE, StorageSettings
from roboflow_storage._storage import Storage
from roboflow_storage.errors import StorageError

__all__ = ["Spool", "default_spool", "spool_at"]


class Spool:
    """Local copies of objects of any :class:`Storage`, in one bounded cache.

    Args:
        cache: Where the copies live (keyed by URL and etag).
        part_size: Bytes per ranged GET of :meth:`local_copy`.
        concurrency: Ranged GETs in flight in :meth:`local_copy`.
    """

    def __init__(
        self, cache: LruCache, *, part_size: int = DOWNLOAD_PART_SIZE, concurrency: int = DOWNLOAD_CONCURRENCY
    ) -> None:
        if part_size <= 0 or concurrency <= 0:
            raise ValueError("part_size and concurrency must be positive")
        self.cache = cache
        self.part_size = part_size
        self.concurrency = concurrency

    def __reduce__(self) -> tuple[Callable[[str, int, int, int], Spool], tuple[str, int, int, int]]:
        """Sent to another process (a conversion's worker), a spool becomes that process's spool
        over the same root directory with the same bounds: its own private directory there, one
        per process and settings, as :func:`default_spool` is."""
        root = str(self.cache.directory.parent)
        return spool_at, (root, self.cache.max_bytes, self.part_size, self.concurrency)

    def fits(self, storage: Storage, size: int) -> bool:
        """Whether a copy of a ``size``-byte object of ``storage`` fits (a local store's always does)."""
        return storage.is_local or size <= self.cache.max_bytes

    def local_copy(self, storage: Storage, key: str, *, info: ObjectInfo | None = None) -> Path:
        """A local file with the content of ``key``.

        A local store gives the file itself. A remote object is downloaded into the cache, keyed
        by URL and etag, so a repeated read of an unchanged object is not downloaded again. The
        download runs ``concurrency`` ranged GETs of ``part_size`` bytes at once, each streamed
        into its place in the file (memory stays at a few MiB per GET), all conditional on the
        etag, so an object replaced midway fails instead of mixing two versions.

        Args:
            storage: The object's store.
            key: The object.
            info: Its :meth:`Storage.head` (or listing entry) when the caller has it: saves a request.

        Raises:
            ObjectNotFoundError: No object at ``key``.
            StorageError: The download failed, the object changed meanwhile, or it does not fit
                the cache.
        """
        if info is None:
            info = storage.head(key)
        if storage.is_local:
            return Path(storage.location.prefix, info.key)
        url = storage.url_of(key)

        def fetch(target: Path) -> None:
            download(
                functools.partial(storage.stream_range, key, info.etag),
                info.size,
                target,
                part_size=self.part_size,
                concurrency=self.concurrency,
                resumes=storage.retry.max_retries,
                url=url,
            )

        return self.cache.get_or_fetch(url, info.etag, info.size, fetch)

    def growing_copy(self, storage: Storage, key: str, *, info: ObjectInfo | None = None) -> GrowingCopy:
        """A local copy of ``key`` that can be read while it downloads (see :class:`GrowingCopy`).

        A local store gives the file itself, complete. A remote object already in the cache (the
        same entries as :meth:`local_copy`) is complete at once; one that another thread is
        fetching is waited for. Otherwise a daemon thread streams it in order with a single GET,
        conditional on the etag, into the cache entry (a stream that breaks midway resumes where
        it stopped, up to ``storage.retry.max_retries`` times); readers of the copy wait only
        for the bytes they read next. Close the copy when done: an unfinished download is
        stopped and leaves nothing in the cache.

        Raises:
            ObjectNotFoundError: No object at ``key``.
            StorageError: The object does not fit the cache, or its file cannot be opened or
                created. Download failures are raised by the copy's readers and ``wait()``.
        """
        if info is None:
            info = storage.head(key)
        url = storage.url_of(key)
        if storage.is_local:
            path = Path(storage.location.prefix, info.key)
            try:
                return GrowingCopy.of_file(path, url=url)
            except OSError as err:
                raise StorageError(f"cannot open {path}: {err.strerror}", url=url) from err
        while True:
            found = self.cache.reserve(url, info.etag, info.size)
            if isinstance(found, Reservation):
                stream = functools.partial(storage.stream_range, key, info.etag)
                return GrowingCopy.download(found, stream, resumes=storage.retry.max_retries)
            try:
                return GrowingCopy.of_file(found, url=url)
            except FileNotFoundError:
                continue  # evicted since: fetch it again


@functools.cache
def _cache_at(directory: str, max_bytes: int) -> LruCache:
    """One cache per value of the variables (the arguments are the cache key)."""
    return LruCache(directory, max_bytes=max_bytes)


def spool_at(root: str, max_bytes: int, part_size: int, concurrency: int) -> Spool:
    """This process's spool under ``root`` with these bounds (one per process and arguments).

    Raises:
        StorageError: The cache's directory cannot be created.
    """
    return Spool(_cache_at(root, max_bytes), part_size=part_size, concurrency=concurrency)


def default_spool() -> Spool:
    """The process-wide spool of the current environment: its cache under ``ROBOFLOW_BUFFER_DIR``
    bounded by ``ROBOFLOW_BUFFER_MAX_BYTES`` (one per value of those), downloads by
    ``ROBOFLOW_DOWNLOAD_PART_BYTES`` x ``ROBOFLOW_DOWNLOAD_CONCURRENCY``.

    Raises:
        ConfigError: A variable is not a valid number (names it).
        StorageError: The cache's directory cannot be created.
    """
    settings = StorageSettings.from_env()
    return spool_at(
        settings.buffer_dir,
        settings.buffer_max_bytes,
        settings.download_part_bytes,
        settings.download_concurrency,
    )
