"""Turn the inputs a user names (paths, directories, globs, storage URLs) into recordings.

A recording is a :class:`~pathlib.Path` when it is on the local disk and a ``str`` URL when it is
in an object store: the URL of one object (``s3://bucket/runs/a.mcap``) or, ending in ``/``, the
prefix of a ROS2 bag "directory" (``s3://bucket/runs/bag1/``). Remote URLs keep the query
parameters they were given (endpoint, credentials) so a worker process can open them again; show
them with :func:`display_url`, which drops the query.
"""

from __future__ import annotations

import glob
import os
import posixpath
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse, urlsplit

from roboflow_core import StorageError
from roboflow_storage._glob import compile_glob, has_wildcards, literal_prefix
from roboflow_storage._location import Location, parse_location

if TYPE_CHECKING:  # a store's client (obstore) and the spool are imported where a remote input is met
    from roboflow_storage._spool import Spool
    from roboflow_storage._storage import Storage

_GLOB_CHARS = frozenset("*?[")
RECORDING_SUFFIXES = (".bag", ".mcap", ".db3")
_BAG_MEMBERS = (".db3", ".mcap")

Recording = Path | str
"""A local recording (file or bag directory) or the URL of a remote one (object or bag prefix)."""


def is_remote(url: str | os.PathLike[str]) -> bool:
    """Whether ``url`` names an object store (not a plain path or ``file://`` URL)."""
    if not isinstance(url, str):
        return False
    scheme = urlsplit(url).scheme
    return len(scheme) > 1 and scheme.lower() != "file"


def display_url(url: str | os.PathLike[str]) -> str:
    """``url`` for messages: a path as is, a storage URL without its query (it may hold secrets)."""
    text = os.fspath(url)
    return text.split("?", 1)[0] if is_remote(text) else text


def local_path(url: str | os.PathLike[str]) -> Path:
    """The local path of a plain path or ``file://`` URL.

    Raises:
        StorageError: The URL names an object store (open it with :func:`open_remote`).
    """
    text = os.fspath(url)
    parsed = urlparse(text)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise StorageError(f"{parsed.scheme}:// is not a local path", transient=False, url=display_url(text))
    return Path(text)


def open_remote(url: str) -> tuple[Storage, str, bool]:
    """The storage of a remote recording URL (rooted at its bucket), its key, and whether it is a prefix.

    Raises:
        StorageError: Unknown scheme or parameter, or an invalid store configuration.
    """
    from roboflow_storage._storage import Storage

    location = parse_location(url)
    root = Location(scheme=location.scheme, bucket=location.bucket, prefix="", options=location.options)
    is_prefix = urlsplit(url).path.endswith("/")
    return Storage(root), location.prefix, is_prefix


def _url(base: str, key: str, *, prefix: bool = False) -> str:
    """The URL of ``key`` in the bucket of ``base``, with the query of ``base``."""
    parts = urlsplit(base)
    path = "/" + key.strip("/") + ("/" if prefix else "")
    return f"{parts.scheme}://{parts.netloc}{path}" + (f"?{parts.query}" if parts.query else "")


def _remote(item: str) -> list[str]:
    storage, key, _ = open_remote(item)
    if has_wildcards(key):
        regex = compile_glob(key)
        objects: list[str] = []
        bags: set[str] = set()
        for info in storage.list(literal_prefix(key)):
            parent, name = posixpath.split(info.key)
            if regex.match(info.key) and info.key.lower().endswith(RECORDING_SUFFIXES):
                objects.append(_url(item, info.key))
            elif regex.match(parent) and (name == "metadata.yaml" or name.lower().endswith(_BAG_MEMBERS)):
                bags.add(_url(item, parent, prefix=True))
        found = sorted({*objects, *bags})
        if not found:
            raise StorageError(
                "the pattern matches no recording (.bag, .mcap, .db3 or a bag prefix)",
                transient=False,
                url=display_url(item),
            )
        return found
    if key and storage.exists(key):
        return [_url(item, key)]
    if next(iter(storage.list(key)), None) is not None:
        return [_url(item, key, prefix=True)]
    raise StorageError("no such object or prefix", transient=False, url=display_url(item))


def _is_recording(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in RECORDING_SUFFIXES


def resolve_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[Recording]:
    """Expand the inputs of a conversion into recordings, in a stable order.

    A file (or object) is one recording; a directory (or object prefix) is one recording (a ROS2
    bag, possibly split over several storage files); a glob expands to the recordings it matches,
    sorted (on object stores it is matched against the listing of its literal prefix: objects
    with a recording suffix, and bag prefixes holding ``metadata.yaml``/``.db3``/``.mcap``).
    Duplicates are dropped, first occurrence kept. Local recordings are :class:`Path` objects,
    remote ones ``str`` URLs (see the module docstring).

    Raises:
        StorageError: An input does not exist or a glob matches nothing.
    """
    found: list[Recording] = []
    for item in inputs:
        if is_remote(item):
            found.extend(_remote(os.fspath(item)))
            continue
        path = local_path(item)
        text = str(path)
        if _GLOB_CHARS & set(text):
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            matches = [m for m in matches if _is_recording(m)]
            if not matches:
                raise StorageError(
                    "the pattern matches no recording (.bag, .mcap, .db3 or a bag directory)",
                    transient=False,
                    url=os.fspath(item),
                )
            found.extend(matches)
        elif path.exists():
            found.append(path)
        else:
            raise StorageError("no such file or directory", transient=False, url=os.fspath(item))
    unique: dict[Recording, None] = {}
    for recording in found:
        unique.setdefault(recording, None)
    return list(unique)


def check_inputs(inputs: Sequence[str | os.PathLike[str]]) -> None:
    """Refuse, before any work is queued, inputs that cannot be converted: a bad or refused URL
    (credentials in it, an endpoint not allowed) and an explicitly named file, object or prefix
    that does not exist. Globs are only parsed: matching them is discovery's job.

    Raises:
        StorageError: Naming the input and the reason (permanent).
    """
    for item in inputs:
        if is_remote(item):
            _, key, _ = open_remote(os.fspath(item))
            if not has_wildcards(key):
                _remote(os.fspath(item))
        elif not _GLOB_CHARS & set(str(local_path(item))):
            resolve_inputs([item])


def recording_bytes(recording: Recording | os.PathLike[str]) -> int:
    """Size of a recording in bytes (all files of a bag directory or prefix)."""
    if isinstance(recording, str) and is_remote(recording):
        storage, key, is_prefix = open_remote(recording)
        if is_prefix:
            return sum(info.size for info in storage.list(key))
        return storage.head(key).size
    path = local_path(recording)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def prefetch_recording(recording: Recording | os.PathLike[str], *, spool: Spool | None = None) -> int:
    """Copy a remote recording's storage files into the local spool ahead of its conversion.

    Objects that fit the spool are downloaded as :func:`open_source` would (same cache entry),
    so opening the recording later (with the same spool) reads local files; a concurrent open
    waits for the copy instead of downloading twice. A local recording needs nothing. Returns
    the bytes spooled. ``spool`` defaults to :func:`~roboflow_storage.default_spool`.

    Raises:
        StorageError: Listing or a download failed.
    """
    if not (isinstance(recording, str) and is_remote(recording)):
        return 0
    storage, key, is_prefix = open_remote(recording)
    objects = (
        [i for i in storage.list(key) if i.key.endswith((".mcap", ".db3"))]
        if is_prefix
        else [storage.head(key)]
    )
    from roboflow_storage._spool import default_spool

    spool = spool or default_spool()
    spooled = 0
    for info in objects:
        if spool.fits(storage, info.size):
            spool.local_copy(storage, info.key, info=info)
            spooled += info.size
    return spooled
