"""One :class:`Storage` over local directories, memory and S3/OSS buckets, built on obstore."""

from __future__ import annotations

import builtins
import functools
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import obstore
from obstore.exceptions import PreconditionError

from roboflow_storage._backends import build_store
from roboflow_storage._glob import compile_glob, has_wildcards, literal_prefix
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


class Storage:
    """Objects under one root: a local directory, ``memory://NAME``, ``s3://`` or ``oss://BUCKET/PREFIX``.

    Keys are ``/``-separated and relative to the root. Every failure is a
    :class:`~roboflow_core.StorageError` (or a subclass from :mod:`roboflow_storage.errors`) that
    names the object's URL and the reason, never a credential.

    Args:
        location: Where the root is (see :meth:`from_url`).
        retry: Retry policy for remote stores (obstore retries inside each request); default:
            the environment's (:class:`StorageSettings`, read once here, like the other defaults).
        part_size: Multipart part size for uploads (at least 5 MiB).
        max_concurrency: Parts uploaded at once per upload.
    """

    def __init__(
        self,
        location: Location,
        *,
        retry: RetryPolicy | None = None,
        part_size: int = 16 << 20,
        max_concurrency: int = 8,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum part)")
        self.location = location
        self.retry = retry or StorageSettings.from_env().retry()
        self.part_size = part_size
        self.max_concurrency = max_concurrency
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
            **kwargs: Passed to :class:`Storage` (``retry``, ``part_size``, ``max_concurrency``).

        Raises:
            StorageError: Unknown scheme or parameter, or an invalid store configuration.
        """
        return cls(parse_location(url), **kwargs)

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (self.location, self.retry, self.part_size, self.max_concurrency))

    @property
    def url(self) -> str:
        """The root URL, without query parameters."""
        return self.location.display()

    @property
    def is_local(self) -> bool:
        """Whether objects are plain files (then a :class:`~roboflow_storage.Spool` never copies)."""
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

    def stream_range(self, key: str, etag: str | None, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``[start, end)`` of ``key`` as a stream of chunks, only while its etag is ``etag``
        (``None``: unconditional); what a :class:`~roboflow_storage.Spool` downloads with.

        Raises:
            StorageError: The object changed (its etag differs), or the read failed after retries.
        """
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


def _restore(location: Location, retry: RetryPolicy, part_size: int, max_concurrency: int) -> Storage:
    return Storage(location, retry=retry, part_size=part_size, max_concurrency=max_concurrency)
