"""rosbag2 sqlite3 storage files (``.db3``), read with sqlite3 directly.

Tables: ``topics(id, name, type, serialization_format, ...)``, ``messages(id, topic_id, timestamp,
data)`` and, from rosbag2 format 8 on, ``message_definitions(topic_type, encoding,
encoded_message_definition, ...)``.

A database is a program as much as data: those names must be plain tables (a view, possibly
recursive, or a virtual table is refused), a value may not exceed the record bound, and a query
that produces no row for :data:`QUERY_STALL_S` seconds is interrupted.
"""

from __future__ import annotations

import sqlite3
import struct
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from roboflow_core.errors import CorruptRecordingError
from roboflow_dataset.sources._codecs import trusted_definition
from roboflow_dataset.sources._limits import MAX_RECORD_BYTES
from roboflow_dataset.sources._model import Channel
from roboflow_dataset.sources._storage import ChannelStats, Record, reading

__all__ = ["Db3Storage"]

_HEADER = struct.Struct(">H6xII")  # page size @16, change counter @24, page count @28
_VERSION_VALID_FOR = struct.Struct(">I")  # @92
_TABLES = ("topics", "messages", "message_definitions")
QUERY_STALL_S = 120.0
"""A query that yields no row for this long is interrupted (a hostile schema cannot hang a reader)."""
_PROGRESS_STEPS = 100_000  # virtual-machine instructions between checks of the deadline


def _check_size(path: Path, name: Path | str) -> None:
    """Reject a file shorter than its header says (a truncated copy)."""
    with path.open("rb") as stream:
        head = stream.read(100)
    if len(head) < 100:
        raise CorruptRecordingError(
            "truncated sqlite3 file: the 100-byte header is incomplete", path=str(name)
        )
    page_size, counter, pages = _HEADER.unpack_from(head, 16)
    page_size = 65536 if page_size == 1 else page_size
    (valid_for,) = _VERSION_VALID_FOR.unpack_from(head, 92)
    expected = page_size * pages
    if valid_for == counter and path.stat().st_size < expected:
        raise CorruptRecordingError(
            f"truncated sqlite3 file: {path.stat().st_size} bytes, the header says {expected}", path=str(name)
        )


class Db3Storage:
    """One rosbag2 ``.db3`` file.

    Args:
        path: The file (local).
        name: How messages name the file (a remote URL when ``path`` is a local copy); default: ``path``.

    Raises:
        CorruptRecordingError: The file is truncated or not a rosbag2 database.
    """

    def __init__(self, path: Path, name: str | None = None) -> None:
        self.path: Path | str = name or path
        _check_size(path, self.path)
        uri = f"file:{quote(str(path.resolve()))}?mode=ro&immutable=1"
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self._db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_RECORD_BYTES)
        self._deadline = float("inf")
        self._db.set_progress_handler(self._stalled, _PROGRESS_STEPS)
        try:
            with reading(self.path, "open rosbag2 sqlite3 file"):
                tables = self._tables()
                definitions = self._definitions() if "message_definitions" in tables else {}
                if "topics" not in tables or "messages" not in tables:
                    raise CorruptRecordingError(
                        "not a rosbag2 database: no topics or messages table", path=str(self.path)
                    )
                self._by_id = {
                    topic_id: Channel(self.path, name, msgtype, fmt, *definitions.get(msgtype, ("", b"")))
                    for topic_id, name, msgtype, fmt in self._rows(
                        "SELECT id, name, type, serialization_format FROM topics ORDER BY id",
                        what="list topics",
                    )
                }
        except BaseException:
            self._db.close()
            raise
        self.channels = list(self._by_id.values())

    def _stalled(self) -> int:
        return int(time.monotonic() > self._deadline)

    def _rows(self, sql: str, params: Collection[object] = (), *, what: str) -> Iterator[tuple[Any, ...]]:
        """The rows of a query, interrupted when it yields none for ``QUERY_STALL_S`` seconds."""
        with reading(self.path, what):
            self._deadline = time.monotonic() + QUERY_STALL_S
            try:
                for row in self._db.execute(sql, tuple(params)):
                    yield row
                    self._deadline = time.monotonic() + QUERY_STALL_S
            except sqlite3.OperationalError as err:
                if "interrupted" in str(err):
                    raise CorruptRecordingError(
                        f"cannot {what}: a query produced no row for {QUERY_STALL_S:.0f} s (a hostile "
                        "or damaged database)",
                        path=str(self.path),
                    ) from err
                raise
            finally:
                self._deadline = float("inf")

    def _tables(self) -> set[str]:
        """The rosbag2 tables present, each checked to be a plain table."""
        found = set()
        rows = self._db.execute(
            f"SELECT name, type, sql FROM sqlite_master WHERE name IN ({', '.join('?' * len(_TABLES))})",
            _TABLES,
        ).fetchall()
        for name, kind, sql in rows:
            if kind != "table" or str(sql or "").upper().startswith("CREATE VIRTUAL"):
                raise CorruptRecordingError(
                    f"{name!r} is a {'virtual table' if kind == 'table' else kind}, not a table: a rosbag2 "
                    "database holds plain tables (a crafted file?)",
                    path=str(self.path),
                )
            found.add(name)
        return found

    def _definitions(self) -> dict[str, tuple[str, bytes]]:
        rows = self._rows(
            "SELECT topic_type, encoding, encoded_message_definition, type_description_hash"
            " FROM message_definitions",
            what="read message definitions",
        )
        return {
            msgtype: (enc, text.encode())
            for msgtype, enc, text, digest in rows
            if enc in ("ros2msg", "ros2idl") and trusted_definition(enc, msgtype, text.encode(), digest)
        }

    def stats(self) -> dict[Channel, ChannelStats]:
        """Exact per-channel counts and log-time bounds (an aggregate query)."""
        stats = dict.fromkeys(self.channels, ChannelStats(0, None, None))
        rows = list(
            self._rows(
                "SELECT topic_id, COUNT(*), MIN(timestamp), MAX(timestamp) FROM messages GROUP BY topic_id",
                what="count messages",
            )
        )
        for topic_id, count, first, last in rows:
            if topic_id not in self._by_id:
                raise CorruptRecordingError(
                    f"messages refer to unknown topic id {topic_id}", path=str(self.path)
                )
            stats[self._by_id[topic_id]] = ChannelStats(count, first, last)
        return stats

    def read(self, channels: Collection[Channel] | None, start_ns: int | None) -> Iterator[Record]:
        """Records of ``channels`` (all when ``None``) at or after ``start_ns``, in log-time order."""
        where: list[str] = []
        params: list[int] = []
        if channels is not None:
            ids = [topic_id for topic_id, ch in self._by_id.items() if ch in channels]
            where.append(f"topic_id IN ({', '.join('?' * len(ids))})")
            params.extend(ids)
        if start_ns is not None:
            where.append("timestamp >= ?")
            params.append(start_ns)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT topic_id, timestamp, data FROM messages{clause} ORDER BY timestamp, id"
        for topic_id, log_time, data in self._rows(sql, params, what="read messages"):
            yield log_time, self._by_id[topic_id], data

    def close(self) -> None:
        """Close the database."""
        self._db.close()
