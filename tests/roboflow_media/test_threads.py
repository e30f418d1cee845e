"""An encoder's own threads run below the threads that feed it (never real-time)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from roboflow_core.config import VideoConfig
from roboflow_media import open_encoder
from roboflow_media._threads import ENCODER_NICE, yielding_threads

from .conftest import FPS, HEIGHT, WIDTH, make_frames

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")


def _threads() -> dict[int, tuple[int, int]]:
    """Every thread of this process: (scheduling policy, nice)."""
    found = {}
    for name in os.listdir("/proc/self/task"):
        tid = int(name)
        try:
            found[tid] = (os.sched_getscheduler(tid), os.getpriority(os.PRIO_PROCESS, tid))
        except OSError:
            continue
    return found


def test_svt_av1_threads_are_normal_and_lower_than_the_caller(tmp_path: Path) -> None:
    before = _threads()
    encoder = open_encoder(tmp_path / "v.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=VideoConfig())
    try:
        for frame in make_frames(3):
            encoder.encode(frame)
        during = _threads()
    finally:
        encoder.close()
    started = {tid: value for tid, value in during.items() if tid not in before}
    assert len(started) >= 2, "SVT-AV1 starts worker threads when it opens"
    main_nice = os.getpriority(os.PRIO_PROCESS, os.getpid())
    assert all(policy == os.SCHED_OTHER for policy, _ in during.values()), "no real-time thread is left"
    assert {nice for _, nice in started.values()} == {main_nice + ENCODER_NICE}
    assert all(during[tid] == value for tid, value in before.items() if tid in during), (
        "the caller's threads keep their policy and priority (SVT-AV1 makes its caller real-time as root)"
    )


def test_a_python_thread_started_meanwhile_keeps_its_priority() -> None:
    """Only a codec's threads are lowered: another camera's feeding thread may start while an
    encoder opens, and it must stay as high as the rest of the process."""
    stop = threading.Event()
    with yielding_threads():
        thread = threading.Thread(target=stop.wait)
        thread.start()
    try:
        assert thread.native_id is not None
        main_nice = os.getpriority(os.PRIO_PROCESS, os.getpid())
        assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == main_nice
        assert os.sched_getscheduler(thread.native_id) == os.SCHED_OTHER
    finally:
        stop.set()
        thread.join()
