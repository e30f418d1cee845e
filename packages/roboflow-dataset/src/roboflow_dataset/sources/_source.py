"""The :class:`Source`: one recording made of one or more storage files, merged in log-time order."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from roboflow_dataset.sources._model import Channel, Message, TopicInfo
from roboflow_dataset.sources._storage import ChannelStats, Record, Storage, guarded, reading

__all__ = ["Source", "SourceFormat"]

SourceFormat = Literal["mcap", "ros1", "ros2", "rrd"]
_NO_MESSAGES = ChannelStats(0, None, None)


def _merge_stats(a: ChannelStats, b: ChannelStats) -> ChannelStats:
    firsts = [t for t in (a.first_ns, b.first_ns) if t is not None]
    lasts = [t for t in (a.last_ns, b.last_ns) if t is not None]
    return ChannelStats(a.messages + b.messages, min(firsts, default=None), max(lasts, default=None))


class Source:
    """A recording opened for reading (use :func:`open_source`); a context manager.

    Args:
        path: The recording as given (file or directory; a URL without its query when remote).
        fmt: ``"mcap"``, ``"ros1"``, ``"ros2"`` or ``"rrd"``.
        storages: Its storage files, already open; the source closes them.
    """

    def __init__(self, path: Path | str, fmt: SourceFormat, storages: Sequence[Storage]) -> None:
        self._path = path
        self._format: SourceFormat = fmt
        self._storages = list(storages)
        self._topics: list[TopicInfo] | None = None

    def __repr__(self) -> str:
        return f"Source({str(self._path)!r}, format={self._format!r})"

    @property
    def path(self) -> Path | str:
        """The recording (file or bag directory; its URL, without query, when remote)."""
        return self._path

    @property
    def format(self) -> SourceFormat:
        """``"mcap"``, ``"ros1"``, ``"ros2"`` or ``"rrd"`` (a Rerun recording)."""
        return self._format

    def topics(self) -> list[TopicInfo]:
        """Every topic with its exact message count, sorted by name.

        Raises:
            CorruptRecordingError: The file's index or data is damaged.
        """
        if self._topics is None:
            per_topic: dict[str, tuple[Channel, ChannelStats]] = {}
            for storage in self._storages:
                with reading(storage.path, "count messages"):
                    stats = storage.stats()
                for channel in storage.channels:
                    first, seen = per_topic.get(channel.topic, (channel, _NO_MESSAGES))
                    per_topic[channel.topic] = (first, _merge_stats(seen, stats.get(channel, _NO_MESSAGES)))
            self._topics = [
                TopicInfo(
                    topic=topic,
                    msgtype=channel.msgtype,
                    encoding=channel.encoding,
                    count=stats.messages,
                    first_log_time_ns=stats.first_ns,
                    last_log_time_ns=stats.last_ns,
                )
                for topic, (channel, stats) in sorted(per_topic.items())
            ]
        return self._topics

    def topic_types(self) -> dict[str, str]:
        """Every topic and its message type, without counting messages (see :meth:`topics`).

        Cheaper than :meth:`topics` where counts need a read (a remote MCAP's message indexes).
        """
        types: dict[str, str] = {}
        for storage in self._storages:
            for channel in storage.channels:
                types.setdefault(channel.topic, channel.msgtype)
        return dict(sorted(types.items()))

    @property
    def start_ns(self) -> int | None:
        """Log time of the first message, ``None`` for an empty recording."""
        return min(
            (t.first_log_time_ns for t in self.topics() if t.first_log_time_ns is not None), default=None
        )

    @property
    def end_ns(self) -> int | None:
        """Log time of the last message, ``None`` for an empty recording."""
        return max(
            (t.last_log_time_ns for t in self.topics() if t.last_log_time_ns is not None), default=None
        )

    def messages(self, topics: Iterable[str] | None = None, start_ns: int | None = None) -> Iterator[Message]:
        """Stream messages in log-time order (split files are merged), without decoding them.

        Args:
            topics: Only these topics (all when ``None``); unknown names match nothing.
            start_ns: Only messages logged at or after this time (seeks where the file is indexed).

        Yields:
            Messages; decode with :meth:`Message.decode`.

        Raises:
            CorruptRecordingError: The file is damaged where it is read.
        """
        wanted = None if topics is None else ({topics} if isinstance(topics, str) else set(topics))
        streams: list[Iterator[Record]] = []
        for storage in self._storages:
            channels = None if wanted is None else [ch for ch in storage.channels if ch.topic in wanted]
            if channels is None or channels:
                streams.append(guarded(storage.path, storage.read(channels, start_ns)))
        records = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=itemgetter(0))
        for log_time, channel, data in records:
            yield Message(channel, log_time, data)

    def close(self) -> None:
        """Close every storage file."""
        for storage in self._storages:
            storage.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
