"""One read of a recording in file order, from its first byte, while a remote one still downloads.

For the one-pass conversion (:mod:`roboflow_dataset.align_online`): a single-file MCAP or ROS1
recording (a bare file, or a rosbag2 bag with one MCAP storage file) is read front to back with
forward-only readers (:func:`iter_mcap_records`, :func:`iter_ros1_records`), which need neither
the summary nor the index at the end of the file. A remote object that fits the local buffer is
read from a :class:`~roboflow_storage.GrowingCopy` as its bytes arrive, so decoding and encoding
overlap the download. Channels become known as the reader meets them. Other recordings (``.db3``,
split bags, an MCAP too large for the buffer) have no such read: :func:`open_streamed` returns
``None`` for them and the conversion reads them with two passes.

With ``salvage``, damage ends the read instead of failing it: an interrupted recording (a truncated
MCAP, an unindexed or truncated ROS1 bag) gives its messages up to the last complete one (the
readers decode what was written of a chunk cut short), with a warning naming what was lost.
:class:`SalvagedSource` offers that read to the two-pass conversion.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Self

from roboflow_core.errors import CorruptRecordingError, RoboflowError
from roboflow_dataset.sources._magic import MCAP_MAGIC, ROS1_MAGIC
from roboflow_dataset.sources._model import Channel, Message
from roboflow_dataset.sources._open import _ros2_files, _ros2_objects, local_recording, remote_recording
from roboflow_dataset.sources._storage import Record, guarded
from roboflow_storage import is_remote, recording_bytes

if TYPE_CHECKING:
    from roboflow_storage import GrowingCopy, Spool

__all__ = ["SalvagedSource", "StreamedRecording", "open_streamed"]

log = logging.getLogger("roboflow.sources")

_MAGIC_LEN = max(len(MCAP_MAGIC), len(ROS1_MAGIC))


class StreamedRecording:
    """A recording read once, front to back (see the module docstring); a context manager.

    Args:
        path: The recording as a source names it (a URL without its query when remote).
        file_name: The storage file (its URL when remote), for channels and errors.
        nbytes: The recording's size (every file of a bag).
        is_mcap: MCAP, else ROS1.
        open_stream: Opens a binary stream at the file's first byte.
        copy: The download the stream reads from, when remote.
        salvage: End at damage (with a warning) instead of raising.

    Attributes:
        damage: With ``salvage``, the damage that ended the last read (``None``: read whole).
    """

    def __init__(
        self,
        path: Path | str,
        file_name: Path | str,
        *,
        nbytes: int,
        is_mcap: bool,
        open_stream: Callable[[], IO[bytes]],
        copy: GrowingCopy | None = None,
        salvage: bool = False,
    ) -> None:
        self.path = path
        self.salvage = salvage
        self.damage: CorruptRecordingError | None = None
        self.nbytes = nbytes
        self._file = file_name
        self._is_mcap = is_mcap
        self._open = open_stream
        self._copy = copy
        self._channels: dict[int, Channel] = {}
        self._types: dict[str, str] = {}

    def topic_types(self) -> dict[str, str]:
        """The topics met so far and their message types."""
        return dict(self._types)

    def messages(self, topics: Collection[str]) -> Iterator[Message]:
        """The messages of ``topics`` in file order (each topic's in its recorded order).

        Raises:
            CorruptRecordingError: The file is damaged where it is read (without ``salvage``).
            StorageError: The download failed.
        """
        types = self._types
        count = 0  # what was read, for the salvage warning
        first: int | None = None
        last: Record | None = None
        with self._open() as stream:
            try:
                for last in guarded(self._file, self._records(stream)):
                    log_time, channel, data = last
                    count += 1
                    if first is None or log_time < first:
                        first = log_time
                    topic = channel.topic
                    if topic not in types:
                        types[topic] = channel.msgtype
                    if topic in topics:
                        yield Message(channel, log_time, data)
            except CorruptRecordingError as err:
                if not self.salvage:
                    raise
                if self.damage is None:
                    kept = _kept(count, first, last)
                    log.warning(
                        "%s is damaged: %s; lost: everything after that (%s)", self._file, kept, err.reason
                    )
                self.damage = err

    def complete(self) -> None:
        """Wait until a remote recording is downloaded (a two-pass read then finds it spooled).

        Raises:
            StorageError: The download failed.
        """
        if self._copy is not None:
            self._copy.wait()

    def close(self) -> None:
        """Stop an unfinished download and release the file."""
        if self._copy is not None:
            self._copy.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _records(self, stream: IO[bytes]) -> Iterator[Record]:
        if self._is_mcap:  # the format's reader, imported when a recording of it is read
            from roboflow_dataset.sources._mcap import iter_mcap_records

            return iter_mcap_records(stream, self._file, self._channels)
        from roboflow_dataset.sources._ros1_stream import iter_ros1_records

        return iter_ros1_records(stream, self._file)


def _sniff(open_stream: Callable[[], IO[bytes]]) -> bool | None:
    """``True`` for MCAP, ``False`` for ROS1, ``None`` for anything else."""
    with open_stream() as stream:
        head = stream.read(_MAGIC_LEN)
    if head.startswith(MCAP_MAGIC):
        return True
    return False if head.startswith(ROS1_MAGIC) else None


def _kept(count: int, first: int | None, last: Record | None) -> str:
    """What a read got before the damage (``count`` messages, the earliest log time ``first``, the
    last one read), for the salvage warning."""
    if last is None or first is None:
        return "no complete message was kept"
    seconds = (last[0] - first) / 1e9
    return (
        f"kept its first {count} messages, the last at log time {last[0]} ns "
        f"({seconds:.3f} s after the first; {last[1].topic})"
    )


class SalvagedSource:
    """A damaged recording read front to back, up to the damage, as the two-pass conversion reads a
    :class:`~roboflow_dataset.sources.Source` (``path``, ``topic_types``, ``messages``): each call
    reads the file again from its first byte; ``messages`` are in file order."""

    def __init__(self, streamed: StreamedRecording) -> None:
        self._streamed = streamed
        self.path = streamed.path
        for _ in streamed.messages(()):  # meet every channel before the damage
            pass
        self._types = streamed.topic_types()

    def topic_types(self) -> dict[str, str]:
        """Every topic before the damage and its message type."""
        return dict(self._types)

    def messages(self, topics: Iterable[str] | None = None, start_ns: int | None = None) -> Iterator[Message]:
        """The messages of ``topics`` (all when ``None``) from log time ``start_ns`` on."""
        wanted = set(self._types) if topics is None else set(topics)
        for message in self._streamed.messages(wanted):
            if start_ns is None or message.log_time_ns >= start_ns:
                yield message

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._streamed.close()


def _open_local(path_or_url: str | os.PathLike[str], salvage: bool) -> StreamedRecording | None:
    path = local_recording(path_or_url)
    file = path
    if path.is_dir():
        files = _ros2_files(path)
        if len(files) != 1:
            return None
        file = files[0]
    elif not path.is_file():
        return None

    def open_stream() -> IO[bytes]:
        return file.open("rb")

    is_mcap = _sniff(open_stream)
    if is_mcap is None:
        return None
    return StreamedRecording(
        path, file, nbytes=recording_bytes(path), is_mcap=is_mcap, open_stream=open_stream, salvage=salvage
    )


def _open_remote(url: str, salvage: bool, spool: Spool) -> StreamedRecording | None:
    store, key, found = remote_recording(url)
    objects = [found] if found is not None else _ros2_objects(store, key)
    if len(objects) != 1 or not spool.fits(store, objects[0].size):
        return None
    info = objects[0]
    copy = spool.growing_copy(store, info.key, info=info)
    try:
        nbytes = recording_bytes(url) if info.key != key else info.size  # while the GET starts
        is_mcap = _sniff(copy.open)
        if is_mcap is None:
            copy.close()
            return None
    except BaseException:
        copy.close()
        raise
    return StreamedRecording(
        store.url_of(key),
        store.url_of(info.key),
        nbytes=nbytes,
        is_mcap=is_mcap,
        open_stream=copy.open,
        copy=copy,
        salvage=salvage,
    )


def open_streamed(
    path_or_url: str | os.PathLike[str], *, salvage: bool = False, spool: Spool | None = None
) -> StreamedRecording | None:
    """Open a recording for one front-to-back read, or ``None`` where it has none.

    Anything unusual (a missing file, an unreadable bag directory, a ``.db3``, several storage
    files, a recording too large for the local buffer) gives ``None``: the two-pass read reports
    what is wrong, or reads it.

    Args:
        path_or_url: As for :func:`~roboflow_dataset.sources.open_source`.
        salvage: Read up to damage instead of failing there (see the module docstring).
        spool: Where a remote recording is downloaded while it is read (default: the
            process-wide :func:`~roboflow_storage.default_spool` of the environment).
    """
    try:
        if is_remote(path_or_url):
            from roboflow_storage import default_spool  # the spool: only a remote recording needs one

            return _open_remote(os.fspath(path_or_url), salvage, spool or default_spool())
        return _open_local(path_or_url, salvage)
    except (RoboflowError, OSError):
        return None
