"""One :class:`Storage` over local directories, memory and S3/OSS buckets, built on obstore."""

from __future__ import annotations

import builtins
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import obstore
from obstore.exceptions import PreconditionError

from roboflow_storage._backends import build_store
from roboflow_storage._cache import LruCache, Reservation
from roboflow_storage._download import download
from roboflow_storage._glob import compile_glob, has_wildcards, literal_prefix
from roboflow_storage._growing import GrowingCopy
from roboflow_storage._info import ObjectInfo
from roboflow_storage._location import Location, parse_location
from roboflow_storage._reader import ObjectReader
from roboflow_storage._retry import RetryPolicy
from roboflow_storage._settings import StorageSettings
from roboflow_storage._translate import translate_errors
from roboflow_storage._writer import ObjectWriter
from roboflow_storage.errors import ObjectChangedError, ObjectExistsError, ObjectNotFoundError, StorageError

if TYPE_CHECKING:
    from obstore import GetOptions

PutMode = Literal["overwrite", "create"]
MIN_PART_SIZE = 5 << 20
"""S3's smallest multipart part (the last part may be smaller)."""
_STREAM_CHUNK = 1 << 20


@functools.cache
def _cache_at(directory: str, max_bytes: int) -> LruCache:
    """One cache per value of the variables (the arguments are the cache key)."""
    return LruCache(directory, max_bytes=max_bytes)


def _default_cache() -> LruCache:
    """The process-wide cache for the current ``ROBOFLOW_BUFFER_DIR`` and ``ROBOFLOW_BUFFER_MAX_BYTES``."""
    settings = StorageSettings.from_env()
    return _cache_at(settings.buffer_dir, settings.buffer_max_bytes)


class Storage:
    """Objects under one root: a local directory, ``memory://NAME``, ``s3://`` or ``oss://BUCKET/PREFIX``.

    Keys are ``/``-separated and relative to the root. Every failure is a
    :class:`~roboflow_core.StorageError` (or a subclass from :mod:`roboflow_storage.errors`) that
    names the object's URL and the reason, never a credential.

    Args:
        location: Where the root is (see :meth:`from_url`).
        retry: Retry policy for remote stores (obstore retries inside each request); default:
            the environment's (:class:`StorageSettings`, read once here, like the other defaults).
        cache: Local cache used by :meth:`local_copy`; default: the process-wide one from
            ``ROBOFLOW_BUFFER_DIR``.
        part_size: Multipart part size for uploads (at least 5 MiB).
        max_concurrency: Parts uploaded at once per upload.
        download_part_size: Bytes per ranged GET when :meth:`local_copy` downloads; default
            ``ROBOFLOW_DOWNLOAD_PART_BYTES`` or 64 MiB.
        download_concurrency: Ranged GETs in flight when :meth:`local_copy` downloads; default
            ``ROBOFLOW_DOWNLOAD_CONCURRENCY`` or 4.
    """

    def __init__(
        self,
        location: Location,
        *,
        retry: RetryPolicy | None = None,
        cache: LruCache | None = None,
        part_size: int = 16 << 20,
        max_concurrency: int = 8,
        download_part_size: int | None = None,
        download_concurrency: int | None = None,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum part)")
        self.location = location
        settings = StorageSettings.from_env()
        self.retry = retry or RetryPolicy(
            max_retries=settings.max_retries, retry_timeout_s=settings.retry_timeout_s
        )
        self.part_size = part_size
        self.max_concurrency = max_concurrency
        if download_part_size is None:
            download_part_size = settings.download_part_bytes
        if download_concurrency is None:
            download_concurrency = settings.download_concurrency
        self.download_part_size = download_part_size
        self.download_concurrency = download_concurrency
        if self.download_part_size <= 0 or self.download_concurrency <= 0:
            raise ValueError("download_part_size and download_concurrency must be positive")
        self._cache = cache
        self._store, self._secrets = build_store(location, self.retry)
        self._root = "" if location.scheme == "file" else location.prefix

    @classmethod
    def from_url(cls, url: str | os.PathLike[str], **kwargs: Any) -> Storage:
        """Open the storage root at ``url``.

        Args:
            url: A plain path, ``file://``, ``memory://NAME[/PREFIX]`` (shared per process by
                name), ``s3://BUCKET[/PREFIX]`` or ``oss://BUCKET[/PREFIX]``. Query parameters:
                ``endpoint``, ``region``, ``allow_http``, ``virtual_hosted``, ``anonymous``,
                ``access_key_id``, ``secret_access_key``, ``session_token``; they win over the
                environment (``AWS_*`` for s3, ``OSS_*`` for oss).
            **kwargs: Passed to :class:`Storage` (``retry``, ``cache``, ``part_size``, ...).

        Raises:
            StorageError: Unknown scheme or parameter, or an invalid store configuration.
        """
        return cls(parse_location(url), **kwargs)

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        sizes = (self.part_size, self.max_concurrency, self.download_part_size, self.download_concurrency)
        return (_restore, (self.location, self.retry, *sizes))

    @property
    def url(self) -> str:
        """The root URL, without query parameters."""
        return self.location.display()

    @property
    def is_local(self) -> bool:
        """Whether objects are plain files (then :meth:`local_copy` never copies)."""
        return self.location.scheme == "file"

    def url_of(self, key: str) -> str:
        """The URL of ``key`` (for messages: no query parameters)."""
        return self.location.display(key)

    def _path(self, key: str) -> str:
        return "/".join(part for part in (self._root, key.strip("/")) if part)

    def _key(self, path: str) -> str:
        return path[len(self._root) + 1 :] if self._root else path

    def _info(self, meta: Any) -> ObjectInfo:
        return ObjectInfo(
            key=self._key(meta["path"]),
            size=meta["size"],
            etag=meta.get("e_tag"),
            last_modified=meta.get("last_modified"),
        )

    # reading
    def get(self, key: str) -> bytes:
        """The whole content of ``key``.

        Raises:
            ObjectNotFoundError: No object at ``key``.
            StorageError: The read failed after retries.
        """
        with translate_errors(self.url_of(key), "get", self._secrets):
            return bytes(obstore.get(self._store, self._path(key)).bytes())

    def get_versioned(self, key: str) -> tuple[bytes, str | None]:
        """The whole content of ``key`` and its etag, from one GET (the pair for :meth:`replace`).

        Raises:
            ObjectNotFoundError: No object at ``key``.
            StorageError: The read failed after retries.
        """
        with translate_errors(self.url_of(key), "get", self._secrets):
            result = obstore.get(self._store, self._path(key))
            return bytes(result.bytes()), result.meta.get("e_tag")

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of ``key`` (one ranged GET)."""
        if end <= start:
            return b""
        with translate_errors(self.url_of(key), f"get bytes {start}-{end}", self._secrets):
            return bytes(obstore.get_range(self._store, self._path(key), start=start, end=end))

    def head(self, key: str) -> ObjectInfo:
        """Size, etag and modification time of ``key``.

        Raises:
            ObjectNotFoundError: No object at ``key``.
        """
        with translate_errors(self.url_of(key), "head", self._secrets):
            return self._info(obstore.head(self._store, self._path(key)))

    def exists(self, key: str) -> bool:
        """Whether an object exists at ``key``."""
        try:
            self.head(key)
        except ObjectNotFoundError:
            return False
        return True

    def open_reader(self, key: str, *, block_size: int = 8 << 20, read_ahead: int = 2) -> ObjectReader:
        """A seekable binary file over ``key``, reading ahead in the background (see ObjectReader).

        Raises:
            ObjectNotFoundError: No object at ``key``.
        """
        size = self.head(key).size
        fetch = functools.partial(self.get_range, key)
        return ObjectReader(fetch, size, name=self.url_of(key), block_size=block_size, read_ahead=read_ahead)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects under the directory ``prefix`` (whole path segments), in no fixed order."""
        path = self._path(prefix)
        with translate_errors(self.url_of(prefix), "list", self._secrets):
            for chunk in obstore.list(self._store, path or None):
                yield from (self._info(meta) for meta in chunk)

    def glob(self, pattern: str) -> builtins.list[ObjectInfo]:
        """Objects whose keys match ``pattern`` (``*``, ``?``, ``[..]``, ``**``), sorted by key."""
        if not has_wildcards(pattern):
            return [self.head(pattern)] if self.exists(pattern) else []
        regex = compile_glob(pattern.strip("/"))
        found = (info for info in self.list(literal_prefix(pattern)) if regex.match(info.key))
        return sorted(found, key=lambda info: info.key)

    def _cache_in_use(self) -> LruCache:
        return self._cache if self._cache is not None else _default_cache()

    def fits_local_copy(self, size: int) -> bool:
        """Whether :meth:`local_copy` can hold an object of ``size`` bytes (always on a local store)."""
        return self.is_local or size <= self._cache_in_use().max_bytes

    def local_copy(self, key: str, *, info: ObjectInfo | None = None) -> Path:
        """A local file with the content of ``key``, for readers that need a real file.

        A local store returns the file itself. Remote objects are spooled into the bounded
        :class:`LruCache` (``ROBOFLOW_BUFFER_DIR``), keyed by URL and etag, so a repeated read of
        an unchanged object is not downloaded again. The download runs ``download_concurrency``
        ranged GETs of ``download_part_size`` bytes at once, each streamed into its place in the
        file (memory stays at a few MiB per GET), all conditional on the etag, so an object
        replaced midway fails instead of mixing two versions.

        Args:
            key: The object.
            info: Its :meth:`head` (or listing entry) when the caller has it: saves a request.

        Raises:
            ObjectNotFoundError: No object at ``key``.
            StorageError: The download failed, the object changed meanwhile, or it does not fit
                the cache.
        """
        if info is None:
            info = self.head(key)
        if self.is_local:
            return Path(self.location.prefix, info.key)
        url = self.url_of(key)

        def fetch(target: Path) -> None:
            download(
                functools.partial(self._stream_range, key, info.etag),
                info.size,
                target,
                part_size=self.download_part_size,
                concurrency=self.download_concurrency,
                resumes=self.retry.max_retries,
                url=url,
            )

        return self._cache_in_use().get_or_fetch(url, info.etag, info.size, fetch)

    def growing_copy(self, key: str, *, info: ObjectInfo | None = None) -> GrowingCopy:
        """A local copy of ``key`` that can be read while it downloads (see :class:`GrowingCopy`).

        A local store gives the file itself, complete. A remote object already in the
        :class:`LruCache` (the same entries as :meth:`local_copy`) is complete at once; one that
        another thread is fetching is waited for. Otherwise a daemon thread streams it in order
        with a single GET, conditional on the etag, into the cache entry (a stream that breaks
        midway resumes where it stopped, up to ``retry.max_retries`` times); readers of the copy
        wait only for the bytes they read next. Close the copy when done: an unfinished download
        is stopped and leaves nothing in the cache.

        Args:
            key: The object.
            info: Its :meth:`head` (or listing entry) when the caller has it: saves a request.

        Raises:
            ObjectNotFoundError: No object at ``key``.
            StorageError: The object does not fit the cache, or its file cannot be opened or
                created. Download failures are raised by the copy's readers and ``wait()``.
        """
        if info is None:
            info = self.head(key)
        url = self.url_of(key)
        if self.is_local:
            path = Path(self.location.prefix, info.key)
            try:
                return GrowingCopy.of_file(path, url=url)
            except OSError as err:
                raise StorageError(f"cannot open {path}: {err.strerror}", url=url) from err
        cache = self._cache_in_use()
        while True:
            found = cache.reserve(url, info.etag, info.size)
            if isinstance(found, Reservation):
                stream = functools.partial(self._stream_range, key, info.etag)
                return GrowingCopy.download(found, stream, resumes=self.retry.max_retries)
            try:
                return GrowingCopy.of_file(found, url=url)
            except FileNotFoundError:
                continue  # evicted since: fetch it again

    def _stream_range(self, key: str, etag: str | None, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``[start, end)`` of ``key`` as a stream of chunks, only while its etag is ``etag``."""
        url = self.url_of(key)
        options: GetOptions = {"range": (start, end)}
        if etag is not None:
            options["if_match"] = etag
        with translate_errors(url, f"get bytes {start}-{end}", self._secrets):
            try:
                result = obstore.get(self._store, self._path(key), options=options)
                yield from result.stream(min_chunk_size=_STREAM_CHUNK)
            except PreconditionError as err:
                raise StorageError(
                    "the object changed while it was being read (its etag differs); run again", url=url
                ) from err

    # writing
    def put(
        self, key: str, data: bytes | bytearray | memoryview, *, mode: PutMode = "overwrite"
    ) -> str | None:
        """Store ``data`` at ``key`` atomically; returns the new etag if the store gives one.

        ``mode="create"`` is a conditional put (``If-None-Match: *`` on S3; an exclusive create
        locally): it fails if an object exists. Overwrites larger than ``part_size`` go up as a
        parallel multipart upload; create-only puts are always a single PUT.

        Raises:
            ObjectExistsError: ``mode="create"`` and an object exists at ``key``.
            StorageError: The upload failed after retries.
        """
        with translate_errors(self.url_of(key), "put", self._secrets):
            result = obstore.put(
                self._store,
                self._path(key),
                data,
                mode=mode,
                chunk_size=self.part_size,
                max_concurrency=self.max_concurrency,
            )
        return result["e_tag"]

    @property
    def can_replace(self) -> bool:
        """Whether :meth:`replace` works here: object stores yes, a local directory no."""
        return not self.is_local

    def replace(self, key: str, data: bytes | bytearray | memoryview, *, etag: str) -> str | None:
        """Overwrite ``key`` only while its etag is still ``etag`` (``If-Match``); the new etag.

        Raises:
            ObjectChangedError: Someone changed or deleted ``key`` since ``etag`` was read.
            StorageError: The store cannot replace conditionally (see :attr:`can_replace`), or
                the request failed after retries.
        """
        url = self.url_of(key)
        if not self.can_replace:
            raise StorageError(
                "a local directory cannot replace an object conditionally", transient=False, url=url
            )
        try:
            with translate_errors(url, "replace", self._secrets):
                result = obstore.put(self._store, self._path(key), data, mode={"e_tag": etag})
        except (ObjectExistsError, ObjectNotFoundError) as err:
            raise ObjectChangedError(
                "replace failed: the object was changed or deleted since it was read", url=url
            ) from err
        return result["e_tag"]

    def open_writer(self, key: str) -> ObjectWriter:
        """A streaming upload to ``key``, visible only after ``close()`` (aborted on error)."""
        url = self.url_of(key)
        with translate_errors(url, "open writer", self._secrets):
            file = obstore.open_writer(
                self._store, self._path(key), buffer_size=self.part_size, max_concurrency=self.max_concurrency
            )
        return ObjectWriter(file, url=url, secrets=self._secrets)

    def copy(self, src: str, dst: str, *, overwrite: bool = True) -> None:
        """Copy ``src`` to ``dst`` inside the store (server-side on S3).

        Raises:
            ObjectNotFoundError: No object at ``src``.
            ObjectExistsError: ``overwrite=False`` and ``dst`` exists.
            StorageError: Other failures; S3 supports ``overwrite=False`` only where the
                endpoint offers a conditional copy.
        """
        with translate_errors(self.url_of(src), f"copy to {self.url_of(dst)}", self._secrets):
            obstore.copy(self._store, self._path(src), self._path(dst), overwrite=overwrite)

    def rename(self, src: str, dst: str, *, overwrite: bool = True) -> None:
        """Move ``src`` to ``dst``: atomic on a local disk, copy then delete on S3."""
        with translate_errors(self.url_of(src), f"rename to {self.url_of(dst)}", self._secrets):
            obstore.rename(self._store, self._path(src), self._path(dst), overwrite=overwrite)

    def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing object is not an error."""
        try:
            with translate_errors(self.url_of(key), "delete", self._secrets):
                obstore.delete(self._store, self._path(key))
        except ObjectNotFoundError:
            return


def _restore(location: Location, retry: RetryPolicy, *sizes: int) -> Storage:
    part_size, max_concurrency, download_part_size, download_concurrency = sizes
    return Storage(
        location,
        retry=retry,
        part_size=part_size,
        max_concurrency=max_concurrency,
        download_part_size=download_part_size,
        download_concurrency=download_concurrency,
    )
