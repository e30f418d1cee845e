"""ROS1 bags (v2.0; none/lz4/bz2 chunks) through rosbags' indexed reader."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path

from rosbags.rosbag1 import Reader

from roboflow_dataset.sources._model import Channel
from roboflow_dataset.sources._storage import ChannelStats, Record, reading

__all__ = ["ROS1_MAGIC", "Ros1Storage"]

ROS1_MAGIC = b"#ROSBAG V2.0\n"


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
