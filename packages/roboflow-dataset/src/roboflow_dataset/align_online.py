"""One-pass alignment: frames as the messages are read, vouched for by the two-pass plan at the end.

The two-pass conversion (:mod:`roboflow_dataset.align`) reads a recording twice, because the grid
and every frame's choice of message depend on timestamps anywhere in the file. When each topic's
messages come in log order with non-decreasing stamps, as recorders write them, a frame's choice
is settled as soon as every topic has a message past the frame's time, and the grid start once
every required topic has its first message. :class:`OnePassAligner` emits frames on that
assumption while the recording is read once (e.g. while it is still downloading), holding only the
messages later frames may still choose, and proves it at the end: :meth:`OnePassAligner.finish`
builds the real plan with :func:`~roboflow_dataset.align.plan_alignment` from every stamp seen and
checks that each frame emitted is that plan's frame. When it is not (stamps out of order, a topic
that starts late, a message already let go) or the held messages outgrow their bound,
:class:`NotOnePass` is raised and the caller converts with two passes instead, so the result is
always the two-pass result.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from roboflow_core import RoboflowError
from roboflow_dataset.align import AlignmentPlan, TrackSpec, check_episode_span, plan_alignment

__all__ = ["NotOnePass", "OnePassAligner"]

_NS = 1_000_000_000
_UNSET: Any = object()


class NotOnePass(Exception):
    """One pass cannot vouch for its frames: convert with two passes (the reason says why)."""


@dataclass(slots=True)
class _Held:
    """A message a frame may still choose: its position in the topic, stamp, and decoded value."""

    pos: int
    stamp: int
    message: Any
    size: int
    value: Any = _UNSET


@dataclass(slots=True, eq=False)
class _Track:
    """One topic's stamps so far and the messages still held (hashed by identity)."""

    spec: TrackSpec
    stamps: array[int] = field(default_factory=lambda: array("q"))
    last_log_ns: int | None = None
    held: deque[_Held] = field(default_factory=deque)
    chosen: list[int] = field(default_factory=list)  # per emitted frame
    hold: bool = field(init=False)

    def __post_init__(self) -> None:
        self.hold = self.spec.policy == "hold"

    def choose(self, grid_ns: int) -> _Held | None:
        """The message frame time ``grid_ns`` takes, ``None`` while later messages may change it.

        Appending a message never changes a result that is not ``None``, and messages let go
        (:meth:`release_before`) never turn ``None`` into one.
        """
        hold = self.hold
        left = None
        for entry in self.held:  # the first message past the frame (at it too, unless holding)
            if entry.stamp > grid_ns or (not hold and entry.stamp == grid_ns):
                break
            left = entry
        else:
            return None
        if left is None:
            if entry.pos > 0:  # the message before it was let go: it may have been the one
                raise NotOnePass(f"{self.spec.topic}: a message was released too early")
            return entry
        if hold or grid_ns - left.stamp <= entry.stamp - grid_ns:
            return left
        return entry

    def release_before(self, stamp: int) -> int:
        """Let go of messages before the last one stamped before ``stamp`` (no frame from
        ``stamp`` on can take them); bytes freed."""
        held, freed = self.held, 0
        while len(held) > 1 and held[1].stamp < stamp:
            freed += held.popleft().size
        return freed


class OnePassAligner:
    """Turns messages read once, in file order, into aligned frames (see the module docstring).

    Args:
        specs: Every mapped topic (absent optional topics simply never get a message).
        fps: Frames per second of the grid.
        decode: Turns a chosen message into its value (called once per chosen message).
        time_source: ``"header"`` or ``"log"``, as for :func:`~roboflow_dataset.align.scan_stamps`.
        max_held_bytes: Bound on the payload bytes of held messages.
        path: Names the recording in the plan's errors.
        max_duration_ns: The longest episode allowed: no frame past it is emitted (see
            :func:`~roboflow_dataset.align.check_episode_span`).
    """

    def __init__(
        self,
        specs: Sequence[TrackSpec],
        fps: int,
        decode: Callable[[Any], Any],
        *,
        time_source: Literal["header", "log"],
        max_held_bytes: int,
        path: str | None = None,
        max_duration_ns: int | None = None,
    ) -> None:
        self._specs = list(specs)
        self._tracks = {s.topic: _Track(s) for s in self._specs}
        self._required = [t for t in self._tracks.values() if t.spec.required]
        self._dropping = [t for t in self._tracks.values() if t.spec.policy == "drop"]
        self._fps = fps
        self._decode = decode
        self._use_header = time_source == "header"
        self._max_held = max_held_bytes
        self._held_bytes = 0
        self._path = path
        self._max_duration = max_duration_ns
        self._start: int | None = None
        self._frame = 0  # next grid frame to settle
        self._frame_ns = 0  # its grid time (once the grid starts)
        self._blocker: _Track | None = None  # the track that could not choose for it yet
        self._grid: list[int] = []  # grid times of the frames emitted
        self.topics: tuple[str, ...] = ()
        """The topics of the frames: set before the first value is decoded."""

    @property
    def emitted(self) -> int:
        """Frames emitted so far."""
        return len(self._grid)

    def add(self, message: Any) -> Iterator[dict[str, Any]]:
        """Take the next message; yield the frames it settles (``{topic: value}``, in order).

        Raises:
            NotOnePass: The messages break the assumptions, or the held ones outgrow their bound.
            RoboflowError: Reading a stamp or decoding a message failed.
        """
        track = self._tracks.get(message.topic)
        if track is None:
            return
        log_ns = message.log_time_ns
        if track.last_log_ns is not None and log_ns <= track.last_log_ns:
            raise NotOnePass(f"{message.topic}: messages are not in strictly increasing log time")
        track.last_log_ns = log_ns
        stamp = message.header_stamp_ns if self._use_header else None
        stamp = log_ns if stamp is None or stamp <= 0 else stamp
        pos = len(track.stamps)
        track.stamps.append(stamp)
        size = len(message.data)
        track.held.append(_Held(pos, stamp, message, size))
        self._held_bytes += size
        if self._start is None and all(t.stamps for t in self._required) and self._required:
            self._start = max(t.stamps[0] for t in self._required)
        if self._blocker is None or self._blocker is track:  # else no choice changed (_settle)
            yield from self._settle()
        floor = self._frame_ns if self._start is not None else self._lower_bound()
        if floor is not None:
            self._held_bytes -= track.release_before(floor)
        if self._held_bytes > self._max_held:
            raise NotOnePass(
                f"more than {self._max_held} bytes of messages wait for other topics "
                "(flushing.max_memory_bytes)"
            )

    def finish(self) -> tuple[AlignmentPlan, Iterator[dict[str, Any]]]:
        """After the last message: the plan of the recording and the frames not yet emitted.

        Raises:
            NotOnePass: A frame emitted is not the plan's, or one still to come needs a message
                already let go; or the plan cannot be made (two passes report why).
        """
        stamps = {t: np.frombuffer(tr.stamps, dtype=np.int64) for t, tr in self._tracks.items()}
        try:
            plan = plan_alignment(
                stamps, self._specs, self._fps, path=self._path, max_duration_ns=self._max_duration
            )
        except RoboflowError as err:
            raise NotOnePass(f"no plan: {err}") from err
        done = self.emitted
        if plan.n_frames < done or plan.grid_ns[:done].tolist() != self._grid:
            raise NotOnePass("the grid differs from the frames emitted")
        if self._grid and set(plan.topics) != set(self._tracks):
            raise NotOnePass("the topics differ from the frames emitted")
        for topic, p in plan.topics.items():
            track = self._tracks[topic]
            if done and p.chosen[:done].tolist() != track.chosen:
                raise NotOnePass(f"{topic}: a frame took another message than the plan")
            rest = p.chosen[done:]
            if len(rest) and (not track.held or int(rest.min()) < track.held[0].pos):
                raise NotOnePass(f"{topic}: a later frame needs a message already let go")
        if not done:
            self.topics = tuple(plan.topics)
        return plan, self._rest(plan, done)

    def _rest(self, plan: AlignmentPlan, done: int) -> Iterator[dict[str, Any]]:
        by_pos = {t: {h.pos: h for h in self._tracks[t].held} for t in plan.topics}
        for k in range(done, plan.n_frames):
            yield {t: self._value(by_pos[t][int(p.chosen[k])]) for t, p in plan.topics.items()}

    def _settle(self) -> Iterator[dict[str, Any]]:
        """Emit every frame whose messages are settled, in order.

        A frame waits on the first track that cannot choose for it (the blocker); until that
        track takes a message, no other's message changes any choice for the frame (see
        :meth:`_Track.choose`), so :meth:`add` does not call this.
        """
        if self._start is None:
            return
        tracks = self._tracks
        while True:
            grid = self._frame_ns = self._grid_ns(self._frame)
            assert self._start is not None
            check_episode_span(grid - self._start, self._max_duration, path=self._path)
            chosen = {}
            for track in tracks.values():
                entry = track.choose(grid)
                if entry is None:
                    self._blocker = track
                    return
                chosen[track] = entry
            self._frame += 1
            if any(abs(chosen[t].stamp - grid) > t.spec.tolerance_ns for t in self._dropping):
                continue
            self._grid.append(grid)
            self.topics = tuple(tracks)
            for track, entry in chosen.items():
                track.chosen.append(entry.pos)
            yield {track.spec.topic: self._value(entry) for track, entry in chosen.items()}

    def _value(self, entry: _Held) -> Any:
        if entry.value is _UNSET:
            entry.value = self._decode(entry.message)
        return entry.value

    def _grid_ns(self, frame: int) -> int:
        assert self._start is not None
        return self._start + frame * _NS // self._fps

    def _lower_bound(self) -> int | None:
        """Before the grid starts: the latest first stamp of the required topics seen (the start is
        at least that)."""
        firsts = [t.stamps[0] for t in self._required if t.stamps]
        return max(firsts) if firsts else None
