"""Writers behind :func:`roboflow_dataset.synth.write_recording`, one per output format."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Ros2Writer
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

__all__ = ["SynthFormat", "SynthWriter", "open_writer"]

SynthFormat = Literal["mcap", "ros1", "ros2-db3", "ros2-mcap", "rrd"]


class SynthWriter:
    """Serializes rosbags message objects and writes them to one recording.

    Args:
        path: Output file (``mcap``, ``ros1``) or bag directory (``ros2-*``); must not exist.
        fmt: Output format.
    """

    def __init__(self, path: Path, fmt: SynthFormat) -> None:
        self.ros1 = fmt == "ros1"
        self.store: Typestore = get_typestore(Stores.ROS1_NOETIC if self.ros1 else Stores.ROS2_HUMBLE)
        self._serialize = self.store.serialize_ros1 if self.ros1 else self.store.serialize_cdr
        self._mcap_file = None
        if fmt == "mcap":
            self._mcap_file = path.open("xb")
            self._mcap = McapWriter(self._mcap_file, compression=CompressionType.NONE)
            self._mcap.start(profile="ros2", library="roboflow synth")
            return
        if self.ros1:
            self._bag: Ros1Writer | Ros2Writer = Ros1Writer(path)
        else:
            plugin = StoragePlugin.MCAP if fmt == "ros2-mcap" else StoragePlugin.SQLITE3
            self._bag = Ros2Writer(path, version=9, storage_plugin=plugin)
        self._bag.open()

    def add(self, topic: str, msgtype: str) -> tuple[Any, str]:
        """Register a topic; returns the handle for :meth:`write`."""
        if self._mcap_file is None:
            return self._bag.add_connection(topic, msgtype, typestore=self.store), msgtype
        text = self.store.generate_msgdef(msgtype, ros_version=2)[0]
        schema_id = self._mcap.register_schema(name=msgtype, encoding="ros2msg", data=text.encode())
        return self._mcap.register_channel(topic=topic, message_encoding="cdr", schema_id=schema_id), msgtype

    def write(self, handle: tuple[Any, str], log_time_ns: int, message: object) -> None:
        """Serialize ``message`` and write it at ``log_time_ns``."""
        connection, msgtype = handle
        data = self._serialize(message, msgtype)
        if self._mcap_file is None:
            self._bag.write(connection, log_time_ns, data)
        else:
            self._mcap.add_message(
                connection, log_time=log_time_ns, data=bytes(data), publish_time=log_time_ns
            )

    def close(self) -> None:
        """Finish the recording."""
        if self._mcap_file is None:
            self._bag.close()
        else:
            self._mcap.finish()  # type: ignore[no-untyped-call]
            self._mcap_file.close()


def open_writer(path: Path, fmt: SynthFormat) -> SynthWriter:
    """Open a :class:`SynthWriter` (``fmt`` is checked)."""
    if fmt not in ("mcap", "ros1", "ros2-db3", "ros2-mcap"):
        raise ValueError(f"unknown synthetic format {fmt!r}; use mcap, ros1, ros2-db3, ros2-mcap or rrd")
    return SynthWriter(path, fmt)
