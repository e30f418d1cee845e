"""Format detection: :func:`open_source` for files, ``file://`` URLs, rosbag2 dirs and store URLs.

Remote recordings (``s3://``, ``oss://``, ``memory://``) are read once into the local spool when
they fit it, else streamed:

* An object that fits the bounded LRU spool (``ROBOFLOW_BUFFER_MAX_BYTES``) is copied into it
  (:meth:`roboflow_storage.Spool.local_copy`: parallel ranged GETs) and read there, whatever its
  format: a conversion reads a recording twice (timestamps, then the chosen messages) and the
  MCAP reader also seeks through its indexes, so one download beats reading it over the network
  two or three times. The format is sniffed from the copy (no separate GET for the magic). A
  repeated read of an unchanged object is not downloaded again.
* A larger MCAP object streams through :meth:`roboflow_storage.Storage.open_reader` (ranged GETs
  with read-ahead; the summary and chunk indexes let the reader seek), so memory and disk stay
  bounded whatever its size. A larger ROS1 bag, ``.db3`` or ``.rrd`` file is an error: rosbags'
  reader, sqlite3 and rerun's reader need a real file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple, cast
from urllib.parse import unquote, urlparse

from roboflow_core.errors import CorruptRecordingError, SourceError, UnknownFormatError
from roboflow_dataset.sources._magic import MCAP_MAGIC, ROS1_MAGIC, RRD_MAGICS, SQLITE_MAGIC
from roboflow_dataset.sources._source import Source, SourceFormat
from roboflow_dataset.sources._storage import Storage
from roboflow_storage import ObjectNotFoundError, display_url, is_remote, open_remote

if TYPE_CHECKING:
    from roboflow_storage import ObjectInfo, Spool
    from roboflow_storage import Storage as ObjectStorage

__all__ = ["open_source"]


class _RrdFile(NamedTuple):
    """A ``.rrd`` recording to open (it is one file, read by rerun's reader, not a storage file)."""

    file: Path
    release: Callable[[], None] | None = None


# Each format's reader (and what it imports: mcap, rosbags' ROS1 reader, sqlite3; pyarrow for .rrd)
# is imported when a recording of that format is opened, not by every process that imports this.


def _mcap(
    path: Path | str,
    open_stream: Callable[[], IO[bytes]] | None = None,
    *,
    release: Callable[[], None] | None = None,
) -> Storage:
    from roboflow_dataset.sources._mcap import McapStorage

    return McapStorage(path, open_stream, release=release)


def _ros1(path: Path, name: str | None = None) -> Storage:
    from roboflow_dataset.sources._ros1 import Ros1Storage

    return Ros1Storage(path, name)


def _db3(path: Path, name: str | None = None) -> Storage:
    from roboflow_dataset.sources._sqlite import Db3Storage

    return Db3Storage(path, name)


_BY_MAGIC: dict[bytes, tuple[SourceFormat, Callable[[Path], Storage | _RrdFile]]] = {
    MCAP_MAGIC: ("mcap", _mcap),
    ROS1_MAGIC: ("ros1", _ros1),
    SQLITE_MAGIC: ("ros2", _db3),
    **{magic: ("rrd", _RrdFile) for magic in RRD_MAGICS},
}
_STORAGE_SUFFIXES = (".mcap", ".db3")
_MAGIC_LEN = max(len(m) for m in _BY_MAGIC)
_KNOWN = "not a ROS1 bag, rosbag2 storage file, MCAP file or Rerun .rrd recording"


def local_recording(path_or_url: str | os.PathLike[str]) -> Path:
    """The local file or bag directory of a path or ``file://`` URL (a bag's ``metadata.yaml``
    gives its directory).

    Raises:
        SourceError: Another URL scheme.
    """
    text = os.fspath(path_or_url)
    path = Path(text)
    if "://" in text:
        url = urlparse(text)
        if url.scheme != "file":
            raise SourceError(f"unsupported URL scheme {url.scheme!r}", path=display_url(text))
        path = Path(unquote(url.path))
    return path.parent if path.name == "metadata.yaml" else path


def _open_spooled(path: Path, name: str) -> tuple[SourceFormat, Storage | _RrdFile]:
    """A storage file spooled from a store; ``name`` (its URL) names it in messages and errors."""
    from roboflow_dataset.sources._pinned import PinnedFile

    pinned = PinnedFile(path)  # before anything else: the buffer may evict (unlink) the copy
    try:
        with pinned.open() as stream:
            head = stream.read(_MAGIC_LEN)
        if head.startswith(MCAP_MAGIC):
            return "mcap", _mcap(name, pinned.open, release=pinned.close)
        if head.startswith(RRD_MAGICS):  # rerun reads it by name: one that eviction cannot take
            return "rrd", _RrdFile(pinned.reopenable(path), pinned.close)
        pinned.close()
        if head.startswith(ROS1_MAGIC):
            return "ros1", _ros1(path, name)
        if head.startswith(SQLITE_MAGIC):
            return "ros2", _db3(path, name)
    except BaseException:
        pinned.close()
        raise
    raise UnknownFormatError(f"{_KNOWN} (starts with {head[:16]!r})", path=name)


def _open_object(
    store: ObjectStorage, info: ObjectInfo, spool: Spool
) -> tuple[SourceFormat, Storage | _RrdFile]:
    """One remote storage file: through the local spool when it fits, else MCAP streamed by ranges."""
    key = info.key
    name = store.url_of(key)
    if spool.fits(store, info.size):
        return _open_spooled(spool.local_copy(store, key, info=info), name)
    head = store.get_range(key, 0, _MAGIC_LEN)
    if head.startswith(MCAP_MAGIC):
        return "mcap", _mcap(name, lambda: cast(IO[bytes], store.open_reader(key)))
    if head.startswith((ROS1_MAGIC, SQLITE_MAGIC, *RRD_MAGICS)):
        spool.local_copy(store, key)  # raises: it does not fit the buffer, and these need a real file
    raise UnknownFormatError(f"{_KNOWN} (starts with {head[:16]!r})", path=name)


def _bag_file(opened: Storage | _RrdFile, name: str) -> Storage:
    """A storage file of a rosbag2 bag (a ``.rrd`` file is none)."""
    if isinstance(opened, _RrdFile):
        if opened.release is not None:
            opened.release()
        raise UnknownFormatError("a .rrd recording is no rosbag2 storage file; convert it alone", path=name)
    return opened


def _open_all_remote(store: ObjectStorage, objects: list[ObjectInfo], spool: Spool) -> list[Storage]:
    storages: list[Storage] = []
    try:
        for info in objects:
            storages.append(_bag_file(_open_object(store, info, spool)[1], store.url_of(info.key)))
    except BaseException:
        for storage in storages:
            storage.close()
        raise
    return storages


def _bag_info(read: Callable[[], bytes], where: str) -> tuple[dict[str, Any], list[str]]:
    """A rosbag2 ``metadata.yaml`` (``where``): the bag's information and the names of its storage
    files (old versions prefixed them with the bag's name).

    Raises:
        CorruptRecordingError: It cannot be read or parsed.
    """
    import yaml  # only a rosbag2 bag's metadata.yaml needs it (~12 ms of imports)

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, where PyYAML has it: ~8x faster
    try:
        info: dict[str, Any] = yaml.load(read(), Loader=loader)["rosbag2_bagfile_information"]
        return info, [Path(str(p)).name for p in info["relative_file_paths"]]
    except (yaml.YAMLError, KeyError, TypeError, OSError) as err:
        raise CorruptRecordingError(f"unreadable metadata.yaml: {err}", path=where) from err


def _ros2_objects(store: ObjectStorage, prefix: str) -> list[ObjectInfo]:
    """The storage files of a rosbag2 prefix, in recording order (as :func:`_ros2_files`)."""
    skip = len(prefix) + 1 if prefix else 0
    listed = {info.key[skip:]: info for info in store.list(prefix)}
    names = {n for n in listed if "/" not in n}
    where = store.url_of(prefix)
    if "metadata.yaml" not in names:
        files = sorted(
            (n for n in names if n.endswith(_STORAGE_SUFFIXES)), key=lambda n: _natural_key(Path(n))
        )
        if not files:
            raise UnknownFormatError(
                "prefix has neither metadata.yaml nor .db3/.mcap storage files", path=where
            )
        return [listed[n] for n in files]
    info, relative = _bag_info(lambda: store.get(f"{prefix}/metadata.yaml"), f"{where}/metadata.yaml")
    if info.get("compression_format"):
        raise SourceError(
            f"{info['compression_format']} compressed rosbag2 is not supported; "
            "run `ros2 bag decompress` first",
            path=where,
        )
    missing = [n for n in relative if n not in names]
    if missing:
        raise CorruptRecordingError(
            f"storage files listed in metadata.yaml are missing: {missing}", path=where
        )
    return [listed[n] for n in relative]


def remote_recording(url: str) -> tuple[ObjectStorage, str, ObjectInfo | None]:
    """The store of a remote recording, its key (a bag's prefix, without ``metadata.yaml``) and
    its object's info (``None`` for a bag prefix).

    Raises:
        SourceError: Neither an object nor a prefix is there.
    """
    store, key, is_prefix = open_remote(url)
    key = key.strip("/")
    if key.endswith("/metadata.yaml") or key == "metadata.yaml":
        key, is_prefix = key.rpartition("/")[0], True
    if is_prefix:
        return store, key, None
    try:
        return store, key, store.head(key)
    except ObjectNotFoundError:
        if next(iter(store.list(key)), None) is None:
            raise SourceError("no such object or prefix", path=store.url_of(key)) from None
    return store, key, None


class _View(NamedTuple):
    """How a ``.rrd`` recording is viewed: its timeline and, for a sequence, its rate."""

    timeline: str | None
    rate_hz: float | None


def _source(path: Path | str, fmt: SourceFormat, opened: Storage | _RrdFile, view: _View) -> Source:
    if isinstance(opened, _RrdFile):
        from roboflow_dataset.sources._rrd import open_rrd  # pyarrow, and rerun-sdk when it reads

        return open_rrd(
            path, opened.file, timeline=view.timeline, timeline_rate_hz=view.rate_hz, release=opened.release
        )
    return Source(path, fmt, [opened])


def _open_remote(url: str, view: _View, spool: Spool) -> Source:
    store, key, info = remote_recording(url)
    if info is None:
        return Source(store.url_of(key), "ros2", _open_all_remote(store, _ros2_objects(store, key), spool))
    fmt, opened = _open_object(store, info, spool)
    return _source(store.url_of(key), fmt, opened, view)


def _sniff(path: Path) -> tuple[SourceFormat, Callable[[Path], Storage | _RrdFile]]:
    with path.open("rb") as stream:
        head = stream.read(_MAGIC_LEN)
    for magic, opener in _BY_MAGIC.items():
        if head.startswith(magic):
            return opener
    raise UnknownFormatError(f"{_KNOWN} (starts with {head[:16]!r})", path=str(path))


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _ros2_files(directory: Path) -> list[Path]:
    """The storage files of a rosbag2 directory, in recording order."""
    metadata = directory / "metadata.yaml"
    if not metadata.is_file():
        files = sorted((p for p in directory.iterdir() if p.suffix in _STORAGE_SUFFIXES), key=_natural_key)
        if not files:
            raise UnknownFormatError(
                "directory has neither metadata.yaml nor .db3/.mcap storage files", path=str(directory)
            )
        return files
    info, relative = _bag_info(metadata.read_bytes, str(metadata))
    if info.get("compression_format"):
        raise SourceError(
            f"{info['compression_format']} ({info.get('compression_mode', '')}) compressed rosbag2 is not "
            "supported; run `ros2 bag decompress` first",
            path=str(directory),
        )
    files = [directory / name for name in relative]
    missing = [p.name for p in files if not p.is_file()]
    if missing:
        raise CorruptRecordingError(
            f"storage files listed in metadata.yaml are missing: {missing}", path=str(directory)
        )
    return files


def _open_all(files: list[Path]) -> list[Storage]:
    storages: list[Storage] = []
    try:
        for file in files:
            storages.append(_bag_file(_sniff(file)[1](file), str(file)))
    except BaseException:
        for storage in storages:
            storage.close()
        raise
    return storages


def open_source(
    path_or_url: str | os.PathLike[str],
    *,
    timeline: str | None = None,
    timeline_rate_hz: float | None = None,
    spool: Spool | None = None,
) -> Source:
    """Open a recording, detecting its format from its content.

    Args:
        path_or_url: A ROS1 ``.bag``, a bare ``.mcap``, a rosbag2 directory (``metadata.yaml`` with
            ``.db3``/``.mcap`` files, or just the storage files, split bags included), a single
            ``.db3`` file, a rosbag2 ``metadata.yaml``, a Rerun ``.rrd`` recording, or a
            ``file://``, ``s3://``, ``oss://`` or ``memory://`` URL to one of these (a rosbag2
            bag in a store is a key prefix).
        timeline: For a ``.rrd`` recording, the timeline its messages are timed on (default:
            ``log_time``, else its only temporal timeline); other formats ignore it.
        timeline_rate_hz: The rate of a ``.rrd`` sequence timeline (needed to align on one).
        spool: Where a remote recording is copied to be read (default: the process-wide
            :func:`~roboflow_storage.default_spool` of the environment).

    Returns:
        The open source (a context manager).

    Raises:
        SourceError: The path does not exist or cannot be read; a ``.rrd`` recording without
            rerun-sdk installed, or without the timeline.
        UnknownFormatError: The input is no recording format known here.
        CorruptRecordingError: The recording is truncated or damaged.
    """
    view = _View(timeline, timeline_rate_hz)
    if is_remote(path_or_url):
        from roboflow_storage import default_spool  # the spool: only a remote recording needs one

        return _open_remote(os.fspath(path_or_url), view, spool or default_spool())
    path = local_recording(path_or_url)
    if not path.exists():
        raise SourceError("no such file or directory", path=str(path))
    try:
        if path.is_dir():
            return Source(path, "ros2", _open_all(_ros2_files(path)))
        fmt, opener = _sniff(path)
        return _source(path, fmt, opener(path), view)
    except OSError as err:
        raise SourceError(f"cannot read: {err.strerror or err}", path=str(path)) from err
