"""Rerun ``.rrd`` recordings, read with rerun-sdk (the optional extra ``roboflow-dataset[rerun]``).

A recording is viewed on one timeline (``log_time`` by default, or the one the config names):
every entity path with temporal data on it is a topic, its message type the archetype that
makes its rows (``rerun.archetypes.Image``, ``EncodedImage``, ``DepthImage``, ``Tensor``,
``Scalars``, in that order of preference; otherwise every row is a message and the type lists
the entity's archetypes). A message's log time is its time on that timeline (a sequence
timeline's index over the rate given). Static data is no message: it fills the components a row
lacks (an image format logged once) and names Scalars (``SeriesLines`` names).

Counts and time ranges come from the file's manifest (its footer), without reading chunks.
Messages stream in one forward read of the file (rerun's stream reader decodes one chunk at a
time; its ``LazyStore`` streams load every matching chunk at once, so they serve only the
entities' static data); a row waits until no unread chunk can start before it (the manifest
gives every chunk's first time). Files written by rerun's logging SDK keep chunks in about time
order, so this holds a few chunks; where the manifest shows it would hold more than
``ROBOFLOW_RRD_MAX_HELD_BYTES`` (256 MiB; entities one after the other, as merged files are),
every entity is read by its own stream instead.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from roboflow_core.env import env_int
from roboflow_core.errors import CorruptRecordingError, DecodeError, MediaError, SourceError
from roboflow_dataset.sources._model import Channel, Message, Payload, TopicInfo
from roboflow_dataset.sources._rrd_values import (
    DEPTH_IMAGE,
    ENCODED_IMAGE,
    IMAGE,
    PRIMARY,
    component_values,
    image,
)
from roboflow_dataset.sources._source import Source
from roboflow_dataset.sources._storage import reading

__all__ = ["INSTALL_HINT", "LOG_TIME", "RrdSource", "open_rrd"]

LOG_TIME = "log_time"
INSTALL_HINT = (
    "reading .rrd recordings needs rerun-sdk: pip install 'roboflow-dataset[rerun]' "
    "(in this workspace: uv sync --extra rerun)"
)
_IMAGES = (IMAGE, ENCODED_IMAGE, DEPTH_IMAGE)
MAX_HELD_ENV = "ROBOFLOW_RRD_MAX_HELD_BYTES"
_MAX_HELD_BYTES = 256 << 20


def _max_held_bytes() -> int:
    """How many decompressed chunk bytes one forward read may hold (``ROBOFLOW_RRD_MAX_HELD_BYTES``).

    Raises:
        ConfigError: The variable is not a positive whole number (names it).
    """
    return env_int(MAX_HELD_ENV, _MAX_HELD_BYTES)


class _Span(NamedTuple):
    """A temporal chunk as the manifest describes it: where it is, its time range, its size."""

    offset: int
    start: int
    end: int
    nbytes: int


def held_peak(spans: Iterable[_Span]) -> int:
    """The most chunk bytes a forward read in file order holds at once: a chunk stays until no
    unread chunk can start before its last row."""
    ordered = sorted(spans)
    unread = sorted(s.start for s in ordered)
    held: list[tuple[int, int]] = []
    holding = peak = 0
    for span in ordered:
        del unread[bisect.bisect_left(unread, span.start)]
        heapq.heappush(held, (span.end, span.nbytes))
        holding += span.nbytes
        peak = max(peak, holding)
        while held and (not unread or held[0][0] <= unread[0]):
            holding -= heapq.heappop(held)[1]
    return peak


_KINDS = {"timestamp": "timestamp", "duration": "duration", "int64": "sequence"}


@dataclass(frozen=True, slots=True)
class _Timeline:
    name: str
    kind: str  # timestamp | duration | sequence
    rate_hz: float | None

    def to_ns(self, values: pa.Array) -> np.ndarray:
        """Times in ns of a column of this timeline (no nulls)."""
        ints = np.asarray(values.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
        if self.rate_hz is None:
            return ints
        return np.round(ints * (1e9 / self.rate_hz)).astype(np.int64)

    def ns(self, value: int | None) -> int | None:
        return None if value is None else int(self.to_ns(pa.array([value], pa.int64()))[0])


def _describe(timelines: dict[str, str]) -> str:
    return ", ".join(f"{n} ({k})" for n, k in sorted(timelines.items())) or "none"


def _choose_timeline(
    timelines: dict[str, str], name: str | None, rate_hz: float | None, path: str
) -> _Timeline:
    """The timeline messages are timed on: ``name``, else ``log_time``, else the only temporal one."""
    if name is None:
        temporal = [n for n, k in timelines.items() if k != "sequence"]
        if LOG_TIME in timelines:
            name = LOG_TIME
        elif len(temporal) == 1:
            name = temporal[0]
        else:
            raise SourceError(
                f"the recording has no {LOG_TIME} timeline; name the one to align on with [alignment] "
                f"timeline (it has: {_describe(timelines)})",
                path=path,
            )
    if name not in timelines:
        raise SourceError(
            f"the recording has no timeline {name!r} (it has: {_describe(timelines)})", path=path
        )
    if timelines[name] == "sequence":
        if rate_hz is None:
            raise SourceError(
                f"timeline {name!r} is a sequence (frame numbers, not times): give its rate with "
                "[alignment] timeline_rate_hz, or align on a time timeline "
                f"(it has: {_describe(timelines)})",
                path=path,
            )
        return _Timeline(name, "sequence", rate_hz)
    return _Timeline(name, timelines[name], None)


class RrdChannel(Channel):
    """One entity of a ``.rrd`` recording on the chosen timeline."""

    def __init__(
        self,
        path: Path | str,
        entity: str,
        msgtype: str,
        primary: str | None,
        load_statics: Callable[[str], dict[str, pa.Array]],
    ) -> None:
        super().__init__(path, entity, msgtype, "arrow")
        self.primary = primary
        self.chunks: list[_Span] = []  # every temporal chunk on the timeline (times in ns)
        self.stats: tuple[int, int | None, int | None] = (0, None, None)  # count, first, last (ns)
        self._load_statics = load_statics

    @cached_property
    def statics(self) -> dict[str, pa.Array]:
        """The entity's static components (each its last logged value)."""
        return self._load_statics(self.topic)

    def header_stamp(self, data: Payload, log_time_ns: int) -> int | None:
        """Rows have no header: the timeline's time is their log time."""
        return None

    def decode_row(self, batch: pa.RecordBatch, row: int, log_time_ns: int) -> Any:
        """The pixels (images) or component values of one row.

        Raises:
            DecodeError: The row does not decode; names file, entity and time.
        """
        components = {
            f.name: _cell(batch.column(i), row)
            for i, f in enumerate(batch.schema)
            if (f.metadata or {}).get(b"rerun:kind") == b"data"
        }
        try:
            if self.msgtype in _IMAGES:
                return image(self.msgtype, components, self.statics)
            return component_values(components, self.statics)
        except (ValueError, TypeError, MediaError, pa.ArrowException) as err:
            reason = err.reason if isinstance(err, MediaError) else str(err)
            raise DecodeError(
                f"cannot read {self.msgtype} row: {reason}",
                path=str(self.path),
                topic=self.topic,
                log_time_ns=log_time_ns,
            ) from err


def _cell(column: pa.Array, row: int) -> pa.Array | None:
    """One row's component batch (rerun stores a list per row), ``None`` when not logged."""
    scalar = column[row]
    return scalar.values if scalar.is_valid else None


class RrdMessage(Message):
    """One row of an entity: ``data`` is empty (the values are Arrow arrays; :meth:`decode` reads them)."""

    __slots__ = ("_batch", "_row")

    def __init__(self, channel: RrdChannel, log_time_ns: int, batch: pa.RecordBatch, row: int) -> None:
        super().__init__(channel, log_time_ns, b"")
        self._batch = batch
        self._row = row

    def _read(self) -> Any:
        """Images as HWC arrays (RGB order), other rows as ``{component: value}``."""
        channel = self._channel
        assert isinstance(channel, RrdChannel)
        return channel.decode_row(self._batch, self._row, self.log_time_ns)


@dataclass(slots=True)
class _Entity:
    """What the manifest says of one entity's temporal chunks on the chosen timeline."""

    archetypes: dict[str, str | None] = field(default_factory=dict)  # component -> archetype
    chunks: list[int] = field(default_factory=list)  # manifest rows


def _column(index: pa.RecordBatch, name: str) -> list[Any]:
    column = index.column(name)
    if pa.types.is_timestamp(column.type) or pa.types.is_duration(column.type):
        column = column.cast(pa.int64())
    values: list[Any] = column.to_pylist()
    return values


class _Manifest:
    """The chunk index of a recording: per chunk its entity, rows and time range on each timeline."""

    def __init__(self, index: pa.RecordBatch) -> None:
        self._index = index
        self.entities: list[str] = _column(index, "chunk_entity_path")
        self.static: list[bool] = _column(index, "chunk_is_static")
        self.rows: list[int] = _column(index, "chunk_num_rows")
        self.timelines: dict[str, str] = {}
        self.archetypes: dict[str, str | None] = {}  # component -> archetype
        for f in index.schema:
            meta = f.metadata or {}
            timeline = meta.get(b"rerun:index", b"").decode()
            if f.name == f"{timeline}:start":
                self.timelines[timeline] = next(
                    (kind for prefix, kind in _KINDS.items() if str(f.type).startswith(prefix)), "sequence"
                )
            elif timeline and f.name.endswith(":num_rows"):
                component = f.name[len(timeline) + 1 : -len(":num_rows")]
                archetype = meta.get(b"rerun:archetype")
                self.archetypes[component] = archetype.decode() if archetype else None

    def column(self, name: str) -> list[Any]:
        """A column by name, ``None`` for every chunk when the manifest has no such column."""
        if name not in self._index.schema.names:
            return [None] * len(self.entities)
        return _column(self._index, name)

    def channels(
        self, path: str, timeline: _Timeline, load_statics: Callable[[str], dict[str, pa.Array]]
    ) -> list[RrdChannel]:
        """One channel per entity with temporal data, its counts and chunk starts on ``timeline``."""
        starts, ends = self.column(f"{timeline.name}:start"), self.column(f"{timeline.name}:end")
        offsets, sizes = self.column("chunk_byte_offset"), self.column("chunk_byte_size_uncompressed")
        logged = {  # component -> rows per chunk, on any timeline
            c: [
                sum(n or 0 for n in per_chunk)
                for per_chunk in zip(*(self.column(f"{t}:{c}:num_rows") for t in self.timelines), strict=True)
            ]
            for c in self.archetypes
        }
        entities: dict[str, _Entity] = {}
        for row, entity in enumerate(self.entities):
            if self.static[row] or entity.startswith("/__"):
                continue
            seen = entities.setdefault(entity, _Entity())
            seen.archetypes.update((c, self.archetypes[c]) for c, rows in logged.items() if rows[row])
            if starts[row] is not None:
                seen.chunks.append(row)
        channels = []
        for entity, info in sorted(entities.items()):
            present = set(info.archetypes.values())
            archetype = next((a for a in PRIMARY if a in present), None)
            msgtype = archetype or "+".join(sorted(a or "AnyValues" for a in present)) or "none"
            channel = RrdChannel(path, entity, msgtype, PRIMARY.get(archetype or ""), load_statics)
            channel.chunks = [
                _Span(offsets[r] or 0, timeline.ns(starts[r]) or 0, timeline.ns(ends[r]) or 0, sizes[r] or 0)
                for r in info.chunks
            ]
            channel.stats = self._stats(timeline, channel.primary, info.chunks)
            channels.append(channel)
        return channels

    def _stats(
        self, timeline: _Timeline, primary: str | None, chunks: list[int]
    ) -> tuple[int, int | None, int | None]:
        prefix = f"{timeline.name}:{primary}" if primary else timeline.name
        rows = self.column(f"{prefix}:num_rows") if primary else self.rows
        firsts, lasts = self.column(f"{prefix}:start"), self.column(f"{prefix}:end")
        count = sum(rows[r] or 0 for r in chunks)
        first = min((firsts[r] for r in chunks if firsts[r] is not None), default=None)
        last = max((lasts[r] for r in chunks if lasts[r] is not None), default=None)
        return count, timeline.ns(first), timeline.ns(last)


def _exact(entity: str) -> str:
    """An entity path filter matching exactly ``entity`` (not its children)."""
    return f"+ {entity}"


class RrdSource(Source):
    """A ``.rrd`` recording viewed on one timeline (use :func:`open_rrd` / ``open_source``).

    Args:
        path: The recording as given (its URL, without query, when remote).
        file: The local file to read.
        timeline: The timeline to time messages on (``None``: ``log_time``, else the only
            temporal timeline).
        timeline_rate_hz: The rate of a sequence timeline (its index over the rate is the time).
        release: Called on :meth:`close` (frees a pinned spool copy).
    """

    def __init__(
        self,
        path: Path | str,
        file: Path,
        *,
        timeline: str | None = None,
        timeline_rate_hz: float | None = None,
        release: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(path, "rrd", [])
        self._release = release
        self._max_held = _max_held_bytes()  # read once, when opened: a bad value fails here
        name = str(path)
        try:
            from rerun.chunk import RrdReader
        except ImportError as err:
            raise SourceError(INSTALL_HINT, path=name) from err
        with reading(name, "open the .rrd file"), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reader = RrdReader(file)
            if any("no footer" in str(w.message) for w in caught):
                raise CorruptRecordingError(
                    "the .rrd file has no footer (manifest): it is truncated (was the recording "
                    "interrupted?) or was written by an old rerun without one; this reader needs it",
                    path=name,
                )
            recordings = reader.recordings()
            if not recordings:
                raise CorruptRecordingError("the .rrd file holds no recording (only blueprints?)", path=name)
            self._file, self._entry = file, recordings[0]
            self._store = reader.store(store=self._entry)
            manifest = _Manifest(self._store._chunk_index().to_arrow())
        self.timeline = _choose_timeline(manifest.timelines, timeline, timeline_rate_hz, name)
        self.timelines = dict(manifest.timelines)
        self._channels = manifest.channels(name, self.timeline, self._statics)

    def topics(self) -> list[TopicInfo]:
        """Every entity with temporal data: its archetype, row count and time range on the timeline."""
        return [
            TopicInfo(
                topic=ch.topic,
                msgtype=ch.msgtype,
                encoding=ch.encoding,
                count=ch.stats[0],
                first_log_time_ns=ch.stats[1],
                last_log_time_ns=ch.stats[2],
            )
            for ch in self._channels
        ]

    def topic_types(self) -> dict[str, str]:
        """Every entity and its archetype."""
        return {ch.topic: ch.msgtype for ch in self._channels}

    def messages(self, topics: Iterable[str] | None = None, start_ns: int | None = None) -> Iterator[Message]:
        """Rows of the entities in time order on the timeline, streaming (see the module doc)."""
        wanted = None if topics is None else ({topics} if isinstance(topics, str) else set(topics))
        channels = {ch.topic: ch for ch in self._channels if wanted is None or ch.topic in wanted}
        if channels:
            with reading(str(self.path), "read the .rrd file"):
                yield from self._rows(channels, start_ns)

    def close(self) -> None:
        """Release the file."""
        if self._release is not None:
            self._release()
            self._release = None

    def _statics(self, entity: str) -> dict[str, pa.Array]:
        values: dict[str, pa.Array] = {}
        with reading(str(self.path), "read static data"):
            for chunk in self._store.stream().filter(content=_exact(entity), is_static=True):
                batch = chunk.to_record_batch()
                for i, f in enumerate(batch.schema):
                    if batch.num_rows and (f.metadata or {}).get(b"rerun:kind") == b"data":
                        cell = _cell(batch.column(i), batch.num_rows - 1)
                        if cell is not None:
                            values[f.name] = cell
        return values

    def _rows(self, channels: dict[str, RrdChannel], start_ns: int | None) -> Iterator[RrdMessage]:
        """The rows of ``channels`` in time order: chunks are read in file order (rerun's stream
        reader holds one at a time), and a row waits until no unread chunk can start before it.

        Where that would hold more than ``ROBOFLOW_RRD_MAX_HELD_BYTES`` (entities laid out one
        after the other, as a merge of files leaves them), each entity is read by a stream of its
        own and the streams are merged: bounded per entity, at one read of the file per entity.
        """
        from rerun.chunk import RrdReader

        spans = [span for ch in channels.values() for span in ch.chunks]
        if len(channels) > 1 and held_peak(spans) > self._max_held:
            streams = [self._rows({topic: ch}, start_ns) for topic, ch in channels.items()]
            yield from heapq.merge(*streams, key=_log_time)
            return
        unread = sorted(span.start for span in spans)
        held: list[tuple[int, int, RrdMessage]] = []
        order = itertools.count()
        timeline = self.timeline
        chunks = RrdReader(self._file).stream(store=self._entry)
        for chunk in chunks.filter(
            content=[_exact(e) for e in channels], is_static=False, has_timeline=timeline.name
        ):
            batch = chunk.to_record_batch()
            if not batch.num_rows:
                continue
            channel = channels[chunk.entity_path]
            times = timeline.to_ns(batch.column(timeline.name))
            first = int(times.min())
            at = bisect.bisect_left(unread, first)
            if at == len(unread) or unread[at] != first:
                raise CorruptRecordingError(
                    f"a chunk of {channel.topic} is not in the manifest", path=str(self.path)
                )
            del unread[at]
            present = np.full(batch.num_rows, channel.primary is None)
            if channel.primary in batch.schema.names:  # else the chunk holds other components only
                present = batch.column(channel.primary).is_valid().to_numpy(zero_copy_only=False)
            for row in np.flatnonzero(present):
                t = int(times[row])
                if start_ns is None or t >= start_ns:
                    heapq.heappush(held, (t, next(order), RrdMessage(channel, t, batch, int(row))))
            while held and (not unread or held[0][0] <= unread[0]):
                yield heapq.heappop(held)[2]
        if unread:
            raise CorruptRecordingError(
                f"{len(unread)} chunks listed in the manifest were not in the file", path=str(self.path)
            )
        while held:
            yield heapq.heappop(held)[2]


def _log_time(message: RrdMessage) -> int:
    return message.log_time_ns


def open_rrd(
    path: Path | str,
    file: Path,
    *,
    timeline: str | None = None,
    timeline_rate_hz: float | None = None,
    release: Callable[[], None] | None = None,
) -> RrdSource:
    """Open a ``.rrd`` recording (see :class:`RrdSource`); ``release`` is called if it fails too.

    Raises:
        SourceError: rerun-sdk is not installed, or the timeline is missing or a sequence without a rate.
        CorruptRecordingError: The file is truncated, foreign or damaged.
    """
    try:
        return RrdSource(path, file, timeline=timeline, timeline_rate_hz=timeline_rate_hz, release=release)
    except BaseException:
        if release is not None:
            release()
        raise
