"""One read of a recording in file order, from its first byte, while a remote one still downloads.

For the one-pass conversion (:mod:`roboflow_dataset.align_online`): a single-file MCAP or ROS1
recording (a bare file, or a rosbag2 bag with one MCAP storage file) is read front to back with
forward-only readers (:func:`iter_mcap_records`, :func:`iter_ros1_records`), which need neither
the summary nor the index at the end of the file. A remote object that fits the local buffer is
read from a :class:`~roboflow_storage.GrowingCopy` as its bytes arrive, so decoding and encoding
overlap the download. Channels become known as the reader meets them. Other recordings (``.db3``,
split bags, an MCAP too large for the buffer) have no such read: :func:`open_streamed` returns
``None`` for them and the conversion reads them with two passes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from roboflow_core.errors import RoboflowError
from roboflow_dataset.sources._mcap import MCAP_MAGIC, iter_mcap_records
from roboflow_dataset.sources._model import Channel, Message
from roboflow_dataset.sources._open import _ros2_files, _ros2_objects, local_recording, remote_recording
from roboflow_dataset.sources._ros1 import ROS1_MAGIC
from roboflow_dataset.sources._ros1_stream import iter_ros1_records
from roboflow_dataset.sources._storage import Record, guarded
from roboflow_storage import GrowingCopy, is_remote, recording_bytes

__all__ = ["StreamedRecording", "open_streamed"]

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
    ) -> None:
        self.path = path
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
            CorruptRecordingError: The file is damaged where it is read.
            StorageError: The download failed.
        """
        with self._open() as stream:
            for log_time, channel, data in guarded(self._file, self._records(stream)):
                if channel.topic not in self._types:
                    self._types[channel.topic] = channel.msgtype
                if channel.topic in topics:
                    yield Message(channel, log_time, data)

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
        if self._is_mcap:
            return iter_mcap_records(stream, self._file, self._channels)
        return iter_ros1_records(stream, self._file)


def _sniff(open_stream: Callable[[], IO[bytes]]) -> bool | None:
    """``True`` for MCAP, ``False`` for ROS1, ``None`` for anything else."""
    with open_stream() as stream:
        head = stream.read(_MAGIC_LEN)
    if head.startswith(MCAP_MAGIC):
        return True
    return False if head.startswith(ROS1_MAGIC) else None


def _open_local(path_or_url: str | os.PathLike[str]) -> StreamedRecording | None:
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
        path, file, nbytes=recording_bytes(path), is_mcap=is_mcap, open_stream=open_stream
    )


def _open_remote(url: str) -> StreamedRecording | None:
    store, key, found = remote_recording(url)
    objects = [found] if found is not None else _ros2_objects(store, key)
    if len(objects) != 1 or not store.fits_local_copy(objects[0].size):
        return None
    info = objects[0]
    copy = store.growing_copy(info.key, info=info)
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
    )


def open_streamed(path_or_url: str | os.PathLike[str]) -> StreamedRecording | None:
    """Open a recording for one front-to-back read, or ``None`` where it has none.

    Anything unusual (a missing file, an unreadable bag directory, a ``.db3``, several storage
    files, a recording too large for the local buffer) gives ``None``: the two-pass read reports
    what is wrong, or reads it.

    Args:
        path_or_url: As for :func:`~roboflow_dataset.sources.open_source`.
    """
    try:
        if is_remote(path_or_url):
            return _open_remote(os.fspath(path_or_url))
        return _open_local(path_or_url)
    except (RoboflowError, OSError):
        return None
