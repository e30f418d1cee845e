"""The watchdog of a conversion attempt: given up when it stalls, runs too long or must stop.

A worker runs each attempt of a unit in a thread of its own and watches it from its own thread
(:func:`watch`). The attempt marks its progress (messages read by pass 1, frames staged, bytes
uploaded or downloaded); when it made none for ``WORKER_STALL_TIMEOUT_SECS``, ran past
``WORKER_JOB_TIMEOUT_SECS``, or the pod's shutdown grace is over, the worker abandons it and
stops waiting for it. The abandoned
attempt raises :class:`Abandoned` at its next mark or check, before it writes anything else, and
whatever it still does cannot publish: its uploads go under its own claim's staging prefix and
are checked first, and every store write of the claim compares the unit's version, which the
re-queue changed. A thread stuck for good (a read that never returns) cannot be stopped from
Python: it is left behind, and the worker claims no new unit while it runs, so an input that
wedges conversions goes to other pods and a wedged pod shows it on ``/health/live``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from roboflow_core import StalledError, telemetry
from roboflow_distributed.liveness import Clock

__all__ = ["Abandoned", "Attempt", "Released", "watch"]

_T = TypeVar("_T")
_SHUTDOWN = "the pod is shutting down"
_POLL_S = 1.0
"""The longest the watching thread sleeps between looks at the attempt."""


class Abandoned(Exception):
    """The attempt was given up by its pod: stop, write nothing more."""


class Released(Exception):
    """The pod is shutting down and the grace period is over: give the unit back."""


class Attempt:
    """One conversion attempt's progress and deadlines, on the pod's monotonic clock.

    Args:
        stall_timeout: Seconds without progress after which the attempt is given up.
        job_timeout: Seconds after which the attempt is given up, progress or not.
        overdue: Whether the pod's shutdown grace is over (the attempt is then given up and its
            unit given back).
        clock: The pod's monotonic clock.
    """

    def __init__(
        self,
        stall_timeout: float,
        job_timeout: float,
        *,
        overdue: Callable[[], bool] = lambda: False,
        clock: Clock = time.monotonic,
    ) -> None:
        self.stall_timeout = stall_timeout
        self.job_timeout = job_timeout
        self.overdue = overdue
        self.clock = clock
        self.started = self.last = clock()
        self.progress = 0
        """Grows with every mark: frames and bytes (a heartbeat carries it)."""
        self.reason: str | None = None
        self.thread: threading.Thread | None = None
        """The thread running the attempt (see :func:`watch`)."""
        self._lock = threading.Lock()

    def mark(self, amount: int = 1) -> None:
        """Progress was made (``amount`` messages, frames or bytes).

        Raises:
            Abandoned: The attempt was given up meanwhile.
            Released: The pod's shutdown grace is over (the attempt is given up).
        """
        with self._lock:
            self.check()
            if self.overdue():
                self.reason = _SHUTDOWN
                raise Released
            self.progress += max(abs(amount), 1)
            self.last = self.clock()

    def check(self) -> None:
        """Raise :class:`Abandoned` if the attempt was given up (call before every write)."""
        if self.reason is not None:
            raise Abandoned(self.reason)

    def expired(self) -> str | None:
        """Why the attempt must be given up now (stalled, too long), or ``None``."""
        now = self.clock()
        if now - self.started > self.job_timeout:
            return f"the conversion ran longer than {self.job_timeout:g} s (WORKER_JOB_TIMEOUT_SECS)"
        if now - self.last > self.stall_timeout:
            return (
                f"the conversion made no progress (messages, frames or bytes) for {self.stall_timeout:g} s "
                "(WORKER_STALL_TIMEOUT_SECS)"
            )
        return None

    def abandon(self, reason: str) -> None:
        """Give the attempt up: its next mark or check raises :class:`Abandoned`."""
        with self._lock:
            self.reason = self.reason or reason


def watch(body: Callable[[], _T], attempt: Attempt, *, name: str) -> _T:
    """Run ``body`` in a thread of its own (``attempt.thread``) and wait for it; give it up when
    the attempt expires or the pod's shutdown grace is over.

    Raises:
        StalledError: The attempt stalled or ran too long: it is abandoned (its daemon thread ends
            at the attempt's next mark or check, or never).
        Released: The pod's shutdown grace is over: abandoned likewise.
        BaseException: Whatever ``body`` raised.
    """
    done = threading.Event()
    outcome: list[_T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(body())
        except BaseException as err:  # handed to the watching thread (or dropped if abandoned)
            failure.append(err)
        finally:
            done.set()

    # the attempt's thread works within the caller's context (its job's trace and stage clock)
    attempt.thread = threading.Thread(target=telemetry.in_context(run), name=name, daemon=True)
    attempt.thread.start()
    poll = min(_POLL_S, attempt.stall_timeout / 10, attempt.job_timeout / 10)
    while not done.wait(poll):
        if attempt.overdue():
            attempt.abandon(_SHUTDOWN)
            raise Released
        reason = attempt.expired()
        if reason is not None:
            attempt.abandon(reason)
            raise StalledError(reason)
    if failure:
        raise failure[0]
    return outcome[0]
