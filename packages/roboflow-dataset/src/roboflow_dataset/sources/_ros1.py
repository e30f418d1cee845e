"""ROS1 bags (v2.0; none/lz4/bz2 chunks) through rosbags' indexed reader.

rosbags decompresses a chunk whole, trusting it; each chunk's decompressor is replaced by the
bounded one (:func:`~roboflow_dataset.sources._limits.decompress`, capped at the size the chunk's
header declares), so a decompression bomb fails within its declared size.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator
from pathlib import Path

from rosbags.rosbag1 import Reader

from roboflow_dataset.sources._limits import check_size, decompress
from roboflow_dataset.sources._model import Channel
from roboflow_dataset.sources._ros1_stream import chunk_declared
from roboflow_dataset.sources._storage import ChannelStats, Record, reading

__all__ = ["Ros1Storage"]


class Ros1Storage:
    """One ROS1 bag; custom types resolve from the connections' message definitions.

    Args:
        path: The bag (a local file).
        name: How messages name the bag (a remote URL when ``path`` is a local copy); default: ``path``.

    Raises:
        CorruptRecordingError: The bag is truncated, unindexed or damaged.
    """

    def __init__(self, path: Path, name: str | None = None) -> None:
        self.path: Path | str = name or path
        self._reader = Reader(path)
        with reading(self.path, "open ROS1 bag"):
            self._reader.open()
        try:
            self._bound_chunks(path)
        except BaseException:
            self._reader.close()
            raise
        self._by_id = {
            conn.id: Channel(
                self.path,
                conn.topic,
                conn.msgtype,
                "ros1",
                "ros1msg" if conn.msgdef.data else "",
                conn.msgdef.data.encode(),
            )
            for conn in self._reader.connections
        }
        self.channels = list(self._by_id.values())

    def _bound_chunks(self, path: Path) -> None:
        """Give every chunk rosbags indexed the bounded decompressor of its declared size."""
        chunks = self._reader.chunks
        with path.open("rb") as stream:
            for offset, chunk in list(chunks.items()):
                check_size(chunk.datasize, "a chunk", path=self.path, offset=offset)
                compression, size = chunk_declared(stream, offset, self.path)
                bounded = functools.partial(decompress, compression, size=size, path=self.path, offset=offset)
                chunks[offset] = chunk._replace(decompressor=bounded)

    def stats(self) -> dict[Channel, ChannelStats]:
        """Exact per-channel counts and log-time bounds, from the bag's index."""
        stats = {}
        for conn_id, channel in self._by_id.items():
            entries = self._reader.indexes.get(conn_id, [])
            first, last = (entries[0].time, entries[-1].time) if entries else (None, None)
            stats[channel] = ChannelStats(len(entries), first, last)
        return stats

    def read(self, channels: Collection[Channel] | None, start_ns: int | None) -> Iterator[Record]:
        """Records of ``channels`` (all when ``None``) at or after ``start_ns``, in log-time order."""
        connections = [
            conn for conn in self._reader.connections if channels is None or self._by_id[conn.id] in channels
        ]
        if not connections:  # rosbags reads every connection when given none
            return
        for conn, log_time, data in self._reader.messages(connections, start=start_ns):
            yield log_time, self._by_id[conn.id], data

    def close(self) -> None:
        """Close the bag."""
        self._reader.close()
