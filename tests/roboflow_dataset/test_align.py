from dataclasses import dataclass

import numpy as np
import pytest

from roboflow_core import MissingTopicError, PipelineError
from roboflow_dataset.align import TrackSpec, iter_aligned, plan_alignment, scan_stamps

MS = 1_000_000


@dataclass
class Msg:
    topic: str
    log_time_ns: int
    stamp: int | None
    seq: int

    @property
    def header_stamp_ns(self) -> int | None:
        return self.stamp


def _stream(tracks: dict[str, list[int]], latency_ns: int = 2 * MS) -> list[Msg]:
    msgs = [Msg(t, s + latency_ns, s, i) for t, stamps in tracks.items() for i, s in enumerate(stamps)]
    return sorted(msgs, key=lambda m: m.log_time_ns)


def test_grid_is_exact_and_spans_the_common_window() -> None:
    cam = [10 * MS + k * 33_333_333 for k in range(31)]  # 30 Hz, 1 s
    joints = [0 + k * 10 * MS for k in range(120)]  # 100 Hz, from 0 to 1.19 s
    stamps = {"/cam": np.array(cam), "/j": np.array(joints)}
    specs = [TrackSpec("/cam", "nearest", 20 * MS), TrackSpec("/j", "hold", 20 * MS)]
    plan = plan_alignment(stamps, specs, fps=30)
    assert plan.start_ns == cam[0]
    assert plan.grid_ns[-1] <= cam[-1]
    assert plan.n_frames == (cam[-1] - cam[0]) * 30 // 1_000_000_000 + 1
    np.testing.assert_array_equal(plan.grid_ns, cam[0] + np.arange(plan.n_frames) * 1_000_000_000 // 30)
    # hold: last joint message at or before the frame time
    for k, t in enumerate(plan.grid_ns):
        j = plan.topics["/j"].chosen[k]
        assert joints[j] <= t < joints[j] + 10 * MS


def test_nearest_picks_the_nearest_source_frame_despite_jitter_and_a_drop() -> None:
    rng = np.random.default_rng(0)
    nominal = np.arange(60) * 1_000_000_000 // 30
    cam = nominal + rng.integers(-3 * MS, 3 * MS, size=60)
    cam = np.delete(cam, 17)  # a dropped camera frame
    plan = plan_alignment({"/cam": cam}, [TrackSpec("/cam", "nearest", 34 * MS)], fps=30)
    for k, t in enumerate(plan.grid_ns):
        expected = int(np.argmin(np.abs(cam - t)))
        assert plan.topics["/cam"].chosen[k] == expected
    assert plan.topics["/cam"].gaps == 0


def test_drop_removes_frames_without_a_message_in_tolerance() -> None:
    cam = np.array([0, 100 * MS, 300 * MS, 400 * MS])
    plan = plan_alignment({"/cam": cam}, [TrackSpec("/cam", "drop", 10 * MS)], fps=10)
    assert plan.dropped == 1  # the frame at 200 ms
    assert plan.topics["/cam"].chosen.tolist() == [0, 1, 2, 3]
    nearest = plan_alignment({"/cam": cam}, [TrackSpec("/cam", "nearest", 10 * MS)], fps=10)
    assert nearest.n_frames == 5 and nearest.topics["/cam"].gaps == 1


def test_missing_and_disjoint_topics_are_clear_errors() -> None:
    specs = [TrackSpec("/a", "hold", MS), TrackSpec("/b", "hold", MS)]
    with pytest.raises(MissingTopicError) as info:
        plan_alignment({"/a": np.array([1, 2]), "/b": np.array([], dtype=np.int64)}, specs, 10, path="x.bag")
    assert info.value.topic == "/b" and info.value.path == "x.bag"
    with pytest.raises(PipelineError, match="never overlap"):
        plan_alignment({"/a": np.array([0, MS]), "/b": np.array([5 * MS, 6 * MS])}, specs, 10)
    optional = [TrackSpec("/a", "hold", MS), TrackSpec("/b", "hold", MS, required=False)]
    plan = plan_alignment({"/a": np.array([0, 100 * MS]), "/b": np.array([], dtype=np.int64)}, optional, 10)
    assert plan.n_frames == 2 and "/b" not in plan.topics


def test_two_passes_yield_the_planned_messages_in_frame_order() -> None:
    cam = [1_000 * MS + k * 33 * MS + (k % 3) * MS for k in range(40)]
    joints = [1_000 * MS + k * 7 * MS for k in range(200)]
    msgs = _stream({"/cam": cam, "/j": joints})
    stamps = scan_stamps(msgs, ["/cam", "/j"], time_source="header")
    np.testing.assert_array_equal(stamps["/cam"], cam)
    specs = [TrackSpec("/cam", "nearest", 20 * MS), TrackSpec("/j", "hold", 20 * MS)]
    plan = plan_alignment(stamps, specs, fps=30)
    decoded: list[tuple[str, int]] = []

    def decode(m: Msg) -> tuple[str, int]:
        decoded.append((m.topic, m.seq))
        return (m.topic, m.seq)

    frames = list(iter_aligned(msgs, plan, decode))
    assert len(frames) == plan.n_frames
    for k, frame in enumerate(frames):
        assert frame["/cam"] == ("/cam", plan.topics["/cam"].chosen[k])
        assert frame["/j"] == ("/j", plan.topics["/j"].chosen[k])
    # only chosen messages are decoded, each once
    assert len(decoded) == len(set(decoded))
    assert len(decoded) == len(set(plan.topics["/cam"].chosen)) + len(set(plan.topics["/j"].chosen))


def test_log_time_source_ignores_header_stamps() -> None:
    msgs = [Msg("/a", 10, 999, 0), Msg("/a", 20, None, 1)]
    assert scan_stamps(msgs, ["/a"], time_source="log")["/a"].tolist() == [10, 20]
    assert scan_stamps(msgs, ["/a"], time_source="header")["/a"].tolist() == [999, 20]
