"""Resample topics onto one fixed-fps grid per episode, frame-exact and with bounded memory.

Pass 1 (:func:`scan_stamps`) reads only timestamps. :func:`plan_alignment` builds the grid: the
episode spans the window where every required topic has data, and frame ``k`` is at
``start + k / fps`` exactly (integer nanoseconds, no accumulated drift). For every topic it picks
the message of each frame by the topic's policy:

- ``nearest``: the message nearest in time (ties go to the earlier one); a frame whose nearest
  message is farther than the tolerance still gets it and is counted as a gap;
- ``hold``: the last message at or before the frame time (the first one before it exists);
- ``drop``: like ``nearest``, but frames with no message within the tolerance are removed and the
  remaining frames renumbered.

Pass 2 (:func:`iter_aligned`) streams messages, decodes only chosen ones, and yields frames in
order; a decoded message is released after the last frame that uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from roboflow_core import MissingTopicError, PipelineError, RecordingLimitError

__all__ = [
    "AlignmentPlan",
    "TopicPlan",
    "TrackSpec",
    "check_episode_span",
    "iter_aligned",
    "plan_alignment",
    "scan_stamps",
]

_NS = 1_000_000_000


class _Message(Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def log_time_ns(self) -> int: ...

    @property
    def header_stamp_ns(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class TrackSpec:
    """How one topic is aligned."""

    topic: str
    policy: Literal["nearest", "hold", "drop"]
    tolerance_ns: int
    required: bool = True


@dataclass(frozen=True, slots=True)
class TopicPlan:
    """The message (by position in the topic's log order) chosen for every kept frame."""

    spec: TrackSpec
    chosen: np.ndarray
    gaps: int
    max_offset_ns: int


@dataclass(frozen=True, slots=True)
class AlignmentPlan:
    """The grid of one episode and the message each topic contributes to each frame."""

    fps: int
    start_ns: int
    grid_ns: np.ndarray
    topics: dict[str, TopicPlan] = field(default_factory=dict)
    dropped: int = 0

    @property
    def n_frames(self) -> int:
        """Frames in the episode."""
        return len(self.grid_ns)


def scan_stamps(
    messages: Iterable[_Message], topics: Iterable[str], *, time_source: Literal["header", "log"]
) -> dict[str, np.ndarray]:
    """Pass 1: the timestamp of every message of ``topics``, in log order (int64 ns).

    With ``time_source="header"`` the header stamp is used where the message has one, else the
    log time.
    """
    stamps: dict[str, list[int]] = {t: [] for t in topics}
    use_header = time_source == "header"
    for msg in messages:
        bucket = stamps.get(msg.topic)
        if bucket is None:
            continue
        stamp = msg.header_stamp_ns if use_header else None
        bucket.append(msg.log_time_ns if stamp is None or stamp <= 0 else stamp)
    return {t: np.asarray(v, dtype=np.int64) for t, v in stamps.items()}


def _choose(stamps: np.ndarray, grid: np.ndarray, policy: str) -> tuple[np.ndarray, np.ndarray]:
    """Chosen message positions (log order) and their absolute offsets from the grid times."""
    order = np.argsort(stamps, kind="stable")
    ordered = stamps[order]
    if policy == "hold":
        idx = np.searchsorted(ordered, grid, side="right") - 1
        idx = np.clip(idx, 0, len(ordered) - 1)
    else:
        right = np.clip(np.searchsorted(ordered, grid, side="left"), 0, len(ordered) - 1)
        left = np.clip(right - 1, 0, len(ordered) - 1)
        take_left = np.abs(grid - ordered[left]) <= np.abs(ordered[right] - grid)
        idx = np.where(take_left, left, right)
    return order[idx], np.abs(grid - ordered[idx])


def check_episode_span(
    span_ns: int, max_ns: int | None, *, path: str | None, topic: str | None = None
) -> None:
    """Refuse an episode longer than ``max_ns`` (``[dataset] max_episode_seconds``) before any
    frame of it is allocated or encoded.

    Raises:
        RecordingLimitError: Naming the recording, the topic and both durations.
    """
    if max_ns is not None and span_ns > max_ns:
        raise RecordingLimitError(
            f"the mapped topics span {span_ns / _NS:,.0f} s, more than [dataset] max_episode_seconds = "
            f"{max_ns / _NS:,.0f} s (a bogus timestamp? raise the limit for recordings that long)",
            path=path,
            topic=topic,
        )


def plan_alignment(
    stamps: Mapping[str, np.ndarray],
    specs: Iterable[TrackSpec],
    fps: int,
    *,
    path: str | None = None,
    max_duration_ns: int | None = None,
) -> AlignmentPlan:
    """Build the episode grid and each topic's choice of message per frame.

    Args:
        stamps: Each topic's stamps, in log order.
        specs: How each topic is aligned.
        fps: Frames per second of the grid.
        path: Names the recording in errors.
        max_duration_ns: The longest episode allowed (see :func:`check_episode_span`).

    Raises:
        MissingTopicError: A required topic has no message.
        PipelineError: The required topics never overlap in time.
        CorruptRecordingError: The episode would be longer than ``max_duration_ns``.
    """
    specs = list(specs)
    for spec in specs:
        if spec.required and len(stamps.get(spec.topic, ())) == 0:
            raise MissingTopicError(
                "the recording has no message on this mapped topic", path=path, topic=spec.topic
            )
    present = [s for s in specs if len(stamps.get(s.topic, ())) > 0]
    required = [s for s in present if s.required] or present
    if not required:
        raise PipelineError("none of the mapped topics has a message", path=path)
    start = max(int(stamps[s.topic].min()) for s in required)
    end = min(int(stamps[s.topic].max()) for s in required)
    if end < start:
        raise PipelineError(
            "the mapped topics never overlap in time (each one ends before another starts)", path=path
        )
    latest = min(required, key=lambda s: int(stamps[s.topic].max()))
    check_episode_span(end - start, max_duration_ns, path=path, topic=latest.topic)
    n_frames = (end - start) * fps // _NS + 1
    grid = start + (np.arange(n_frames, dtype=np.int64) * _NS) // fps
    keep = np.ones(n_frames, dtype=bool)
    chosen: dict[str, tuple[TrackSpec, np.ndarray, np.ndarray]] = {}
    for spec in present:
        idx, offset = _choose(stamps[spec.topic], grid, spec.policy)
        chosen[spec.topic] = (spec, idx, offset)
        if spec.policy == "drop":
            keep &= offset <= spec.tolerance_ns
    plans = {
        topic: TopicPlan(
            spec=spec,
            chosen=idx[keep],
            gaps=int(np.count_nonzero(offset[keep] > spec.tolerance_ns)) if spec.policy == "nearest" else 0,
            max_offset_ns=int(offset[keep].max()) if keep.any() else 0,
        )
        for topic, (spec, idx, offset) in chosen.items()
    }
    if not keep.any():
        raise PipelineError(
            "every frame was dropped: no frame has all `drop` topics within tolerance", path=path
        )
    return AlignmentPlan(
        fps=fps, start_ns=start, grid_ns=grid[keep], topics=plans, dropped=int(n_frames - keep.sum())
    )


def _last_use(chosen: np.ndarray) -> dict[int, int]:
    """Message position -> last frame that uses it."""
    last: dict[int, int] = {}
    for frame, pos in enumerate(chosen.tolist()):
        last[pos] = frame
    return last


def iter_aligned(
    messages: Iterable[Any],
    plan: AlignmentPlan,
    decode: Callable[[Any], Any],
    *,
    start_frame: int = 0,
    first_positions: Mapping[str, int] | None = None,
) -> Iterator[dict[str, Any]]:
    """Pass 2: yield one ``{topic: decoded value}`` per frame, in frame order.

    ``messages`` must be the same messages, in the same order, as pass 1 saw for these topics;
    ``decode`` turns a chosen message into its value (called once per chosen message).

    Args:
        messages: The messages of the plan's topics, in log order.
        plan: The alignment plan from pass 1.
        decode: Turns a chosen message into its value.
        start_frame: The first frame to yield (resuming): messages only earlier frames use are
            not decoded.
        first_positions: Each topic's position (in pass 1's order) of its first message in
            ``messages``, when they start later in the recording (e.g. read from a log time);
            every message that a frame from ``start_frame`` on uses must still be in them.
    """
    chosen = {t: p.chosen[start_frame:].tolist() for t, p in plan.topics.items()}
    last_use = {t: _last_use(p.chosen[start_frame:]) for t, p in plan.topics.items()}
    counts = {t: (first_positions or {}).get(t, 0) for t in chosen}
    held: dict[str, dict[int, Any]] = {t: {} for t in chosen}
    n_frames = plan.n_frames - start_frame
    frame = 0

    def ready() -> bool:
        return all(counts[t] > chosen[t][frame] for t in chosen)

    for msg in messages:
        topic = msg.topic
        uses = last_use.get(topic)
        if uses is None:
            continue
        pos = counts[topic]
        counts[topic] = pos + 1
        if pos in uses:
            held[topic][pos] = decode(msg)
        while frame < n_frames and ready():
            yield {t: held[t][chosen[t][frame]] for t in chosen}
            for t in chosen:
                pos_t = chosen[t][frame]
                if last_use[t][pos_t] == frame:
                    del held[t][pos_t]
            frame += 1
        if frame == n_frames:
            return
    if frame < n_frames:
        raise PipelineError(
            f"the recording ended after {start_frame + frame} of {plan.n_frames} frames: "
            "it changed between the two passes"
        )
