"""The storage-file protocol every backend implements, and helpers they share."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, Protocol

from roboflow_core.errors import CorruptRecordingError, RoboflowError
from roboflow_dataset.sources._model import Channel, Payload

__all__ = [
    "PIN_SHARE",
    "ChannelStats",
    "Record",
    "Storage",
    "count_records",
    "guarded",
    "payload_of",
    "reading",
]

Record = tuple[int, Channel, Payload]
"""(log time ns, channel, raw payload)."""
PIN_SHARE = 4
"""A payload stays a view of its buffer when it is at least 1/PIN_SHARE of it (else it is copied)."""


def payload_of(view: memoryview) -> Payload:
    """A message payload, ``view`` of the buffer it was read in (a record as read from the file, or
    a chunk's decompressed records: ``view.obj``, all of which the view keeps alive).

    It is not copied out of that buffer when it is at least a quarter of it (:data:`PIN_SHARE`):
    it stays a read-only view, and a raw camera image goes from the file to the encoder with no
    copy. A smaller payload (joint states, a JPEG next to raw images, an IMU sample) is copied, so
    that a message held while other topics catch up (the one-pass aligner's ``max_held_bytes``
    counts ``len(message.data)``) keeps at most four times its own size alive, never a whole
    chunk for a few bytes.
    """
    return view if len(view) * PIN_SHARE >= memoryview(view.obj).nbytes else bytes(view)


class ChannelStats(NamedTuple):
    """Exact message count and log-time bounds of one channel."""

    messages: int
    first_ns: int | None
    last_ns: int | None


class Storage(Protocol):
    """One storage file (an MCAP file, a ROS1 bag, a rosbag2 ``.db3``)."""

    path: Path | str
    channels: list[Channel]

    def stats(self) -> dict[Channel, ChannelStats]:
        """Exact per-channel counts and log-time bounds."""
        ...

    def read(self, channels: Collection[Channel] | None, start_ns: int | None) -> Iterator[Record]:
        """Records of the given channels (all when ``None``) at or after ``start_ns``, in log-time order."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


@contextmanager
def reading(path: Path | str, action: str) -> Iterator[None]:
    """Turn any failure of a dependency while reading ``path`` into :class:`CorruptRecordingError`.

    Dependencies raise many unrelated types on damaged input (struct.error, KeyError, their own
    errors, sqlite3.DatabaseError, decompression errors); all of them mean the file is damaged.

    Args:
        path: The file being read.
        action: What was being done, for the message (``"open MCAP file"``).

    Raises:
        CorruptRecordingError: Anything went wrong; the original error is chained.
    """
    try:
        yield
    except RoboflowError:
        raise
    except Exception as err:
        raise CorruptRecordingError(f"cannot {action}: {type(err).__name__}: {err}", path=str(path)) from err


def guarded(path: Path | str, records: Iterator[Record]) -> Iterator[Record]:
    """Iterate ``records``, reporting damage as :class:`CorruptRecordingError` naming ``path``."""
    with reading(path, "read messages"):
        yield from records


def count_records(channels: Iterable[Channel], records: Iterable[Record]) -> dict[Channel, ChannelStats]:
    """Count records per channel by iterating them (for files without trustworthy statistics)."""
    counts = dict.fromkeys(channels, 0)
    first: dict[Channel, int] = {}
    last: dict[Channel, int] = {}
    for log_time, channel, _ in records:
        counts[channel] = counts.get(channel, 0) + 1
        first[channel] = min(first.get(channel, log_time), log_time)
        last[channel] = max(last.get(channel, log_time), log_time)
    return {ch: ChannelStats(n, first.get(ch), last.get(ch)) for ch, n in counts.items()}
