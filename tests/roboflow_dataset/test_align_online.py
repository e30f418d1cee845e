"""One-pass alignment gives the two-pass frames exactly, or says it cannot."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from roboflow_dataset.align import TrackSpec, iter_aligned, plan_alignment, scan_stamps
from roboflow_dataset.align_online import NotOnePass, OnePassAligner

FPS = 30
MS = 1_000_000


@dataclass(frozen=True)
class Msg:
    topic: str
    log_time_ns: int
    header_stamp_ns: int | None
    data: bytes = b"x" * 10


def _decode(msg: Msg) -> tuple[str, int]:
    return msg.topic, msg.log_time_ns


SPECS = [
    TrackSpec("/cam", "nearest", 20 * MS),
    TrackSpec("/joints", "hold", 20 * MS),
    TrackSpec("/gripper", "drop", 6 * MS, required=False),
]


def _two_pass(file_order: list[Msg], specs: list[TrackSpec]) -> tuple[Any, list[dict[str, Any]]]:
    """What the two-pass conversion makes: messages read in log order (stable), as readers sort."""
    log_order = sorted(file_order, key=lambda m: m.log_time_ns)
    topics = [s.topic for s in specs]
    stamps = scan_stamps(log_order, topics, time_source="header")
    present = [s for s in specs if len(stamps[s.topic])]
    plan = plan_alignment(stamps, present, FPS)
    return plan, list(iter_aligned(log_order, plan, _decode))


def _one_pass(file_order: list[Msg], specs: list[TrackSpec], max_held: int = 1 << 30) -> Any:
    aligner = OnePassAligner(specs, FPS, _decode, time_source="header", max_held_bytes=max_held)
    frames = [f for m in file_order for f in aligner.add(m)]
    early = len(frames)
    plan, rest = aligner.finish()
    return plan, frames + list(rest), early


def _stream(
    rng: random.Random, *, seconds: float = 3.0, jitter_ms: int = 3, late_start_ms: int = 0
) -> list[Msg]:
    msgs = []
    base = 1_000_000_000_000
    for topic, hz, offset in (("/cam", 30, 5), ("/joints", 100, late_start_ms), ("/gripper", 50, 2)):
        t = base + offset * MS
        while t < base + int(seconds * 1e9):
            stamp = t + rng.randint(0, jitter_ms) * MS
            msgs.append(Msg(topic, stamp + rng.randint(1, 4) * MS, stamp))
            t += 1_000_000_000 // hz
    return sorted(msgs, key=lambda m: m.log_time_ns)


@pytest.mark.parametrize("seed", range(12))
def test_ordered_streams_are_emitted_in_one_pass_exactly(seed: int) -> None:
    rng = random.Random(seed)
    msgs = _stream(rng, late_start_ms=rng.choice([0, 40, 300]))
    plan, want = _two_pass(msgs, SPECS)
    got_plan, got, early = _one_pass(msgs, SPECS)
    assert got == want
    assert got_plan.start_ns == plan.start_ns
    assert np.array_equal(got_plan.grid_ns, plan.grid_ns)
    assert early >= len(want) - 3  # all but the last frames came before the end of the stream


@pytest.mark.parametrize("seed", range(6))
def test_each_frame_comes_with_the_message_that_settles_it(seed: int) -> None:
    """A frame is emitted by the first message after which every topic has one past its time (at
    it, unless the topic holds), whichever topic that message is of."""
    rng = random.Random(200 + seed)
    msgs = _stream(rng, jitter_ms=rng.choice([0, 3, 30]), late_start_ms=rng.choice([0, 40]))
    plan, _ = _two_pass(msgs, SPECS)
    aligner = OnePassAligner(SPECS, FPS, _decode, time_source="header", max_held_bytes=1 << 30)
    latest: dict[str, list[int]] = {s.topic: [] for s in SPECS}
    emitted = 0
    for msg in msgs:
        emitted += len(list(aligner.add(msg)))
        assert msg.header_stamp_ns is not None
        latest[msg.topic].append(msg.header_stamp_ns)
        k = 0  # the first grid frame some topic cannot choose for yet
        while True:
            grid = plan.start_ns + k * 1_000_000_000 // FPS
            if not all(
                any(t > grid or (t == grid and s.policy != "hold") for t in latest[s.topic]) for s in SPECS
            ):
                break
            k += 1
        assert emitted == int(np.searchsorted(plan.grid_ns, grid)), msg


def test_frames_come_while_reading_and_only_chosen_messages_are_decoded() -> None:
    msgs = _stream(random.Random(1))
    decoded: list[Msg] = []

    def decode(msg: Msg) -> tuple[str, int]:
        decoded.append(msg)
        return _decode(msg)

    aligner = OnePassAligner(SPECS, FPS, decode, time_source="header", max_held_bytes=1 << 20)
    half = len(msgs) // 2
    first_half = [f for m in msgs[:half] for f in aligner.add(m)]
    second_half = [f for m in msgs[half:] for f in aligner.add(m)]
    plan, rest = aligner.finish()
    assert len(first_half) + len(second_half) + len(list(rest)) == plan.n_frames
    assert len(first_half) >= plan.n_frames // 2 - 3
    chosen = {(t, int(p)) for t, tp in plan.topics.items() for p in tp.chosen}
    assert len(decoded) == len(chosen) == len(set(map(id, decoded)))


@pytest.mark.parametrize("seed", range(12))
def test_disordered_streams_are_refused_or_exact(seed: int) -> None:
    """Swapped neighbours in file order or stamps out of order: never a frame the two passes
    would not make."""
    rng = random.Random(100 + seed)
    msgs = _stream(rng)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(msgs) - 1)
        if rng.random() < 0.5:
            msgs[i], msgs[i + 1] = msgs[i + 1], msgs[i]
        else:
            m = msgs[i]
            msgs[i] = Msg(m.topic, m.log_time_ns, (m.header_stamp_ns or 0) + rng.randint(-60, 60) * MS)
    _, want = _two_pass(msgs, SPECS)
    try:
        _, got, _ = _one_pass(msgs, SPECS)
    except NotOnePass:
        return
    assert got == want


def test_messages_out_of_log_order_within_a_topic_are_refused() -> None:
    msgs = _stream(random.Random(7))
    cams = [i for i, m in enumerate(msgs) if m.topic == "/cam"]
    a, b = cams[10], cams[11]
    msgs[a], msgs[b] = msgs[b], msgs[a]
    with pytest.raises(NotOnePass, match="log time"):
        _one_pass(msgs, SPECS)


def test_held_messages_are_bounded() -> None:
    """A required topic that starts late makes the others wait; past the bound it gives up."""
    msgs = _stream(random.Random(3), late_start_ms=2000)
    with pytest.raises(NotOnePass, match="max_memory_bytes"):
        _one_pass(msgs, SPECS, max_held=500)
    _, want = _two_pass(msgs, SPECS)
    _, got, _ = _one_pass(msgs, SPECS, max_held=1 << 20)
    assert got == want


def test_an_optional_topic_without_messages_waits_for_the_end() -> None:
    msgs = [m for m in _stream(random.Random(5)) if m.topic != "/gripper"]
    plan, want = _two_pass(msgs, SPECS)
    assert "/gripper" not in plan.topics
    _, got, early = _one_pass(msgs, SPECS)
    assert early == 0
    assert got == want


def test_a_missing_required_topic_is_left_to_two_passes() -> None:
    msgs = [m for m in _stream(random.Random(5)) if m.topic != "/joints"]
    with pytest.raises(NotOnePass, match="no plan"):
        _one_pass(msgs, SPECS)
