"""Keep a codec's threads from starving the threads that feed it.

An encoder library starts its own worker threads when it opens: SVT-AV1 starts about 50 per
encoder, and as real-time threads (``SCHED_FIFO``, priority 99) when the process runs as root,
as it does in most containers. Real-time threads always run before normal ones, and even as
normal threads that many outvote the few threads that read and decode the recording (and, in a
worker pod, send heartbeats and answer health checks). Measured on 2 cores, the decoding thread
spent 7 of 10 seconds waiting to run while the encoders waited for frames. So the threads an
encoder starts are put to the normal policy at a lower priority (``nice``): they still take every
idle cycle, but the threads feeding them run first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator

__all__ = ["ENCODER_NICE", "yielding_threads"]

_log = logging.getLogger(__name__)
_TASKS = "/proc/self/task"
ENCODER_NICE = 10
"""How much lower than the rest of the process an encoder's threads run (``nice`` increment)."""


def _threads() -> set[int]:
    try:
        return {int(name) for name in os.listdir(_TASKS)}
    except OSError:  # no /proc: not Linux
        return set()


@contextlib.contextmanager
def yielding_threads() -> Iterator[None]:
    """Threads a codec starts inside the block (an encoder opening) run at the normal policy,
    ``nice`` :data:`ENCODER_NICE` more than the process's main thread; so does any other
    real-time thread the process did not start from Python (Roboflow never asks for one, so it is
    a codec's). Python's own threads are left alone, except the calling one, which SVT-AV1 also
    makes real-time: it gets back the policy and ``nice`` it had."""
    me = threading.get_native_id()
    before = _threads()
    policy, param, my_nice = (
        os.sched_getscheduler(me),
        os.sched_getparam(me),
        os.getpriority(os.PRIO_PROCESS, me),
    )
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(me, policy, param)
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, me, my_nice)
        python = {t.native_id for t in threading.enumerate()}
        _lower(_threads() - python, before)


def _lower(threads: set[int], before: set[int]) -> None:
    nice = os.getpriority(os.PRIO_PROCESS, os.getpid()) + ENCODER_NICE
    lowered = 0
    for tid in threads:
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            realtime = os.sched_getscheduler(tid) != os.SCHED_OTHER
            if realtime:
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            if realtime or tid not in before:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
                lowered += 1
    if lowered:
        _log.debug("%d encoder threads run at nice %d", lowered, nice)
