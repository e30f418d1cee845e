"""Liveness without comparing clocks: how long a record has stood still, on the observer's clock.

Every write of a key gives it a new store version (etcd's ``mod_revision``, the SQLite store's
revision counter, the TiKV store's version header), even when the value is the same. A pod shows
that it is alive by rewriting its heartbeat, a lease holder by rewriting its lock. An observer
never reads a time out of another pod's record: it notes, on its own monotonic clock, when it
first saw a key at its current version (or mark), and calls the key stale once that has stood
still for the timeout. Pods' wall clocks may be off by any amount; only their rates matter.

A new observer has seen nothing yet, so it waits a whole timeout before it calls anything stale.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable

__all__ = ["Clock", "Staleness"]

Clock = Callable[[], float]
"""A monotonic clock in seconds (``time.monotonic``; tests inject their own)."""


class Staleness:
    """When this observer first saw each key with its current mark, on its own clock.

    Args:
        clock: The observer's monotonic clock.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._seen: dict[str, tuple[Hashable, float]] = {}
        self._lock = threading.Lock()

    def age(self, key: str, mark: Hashable) -> float:
        """Seconds since this observer first saw ``key`` with ``mark`` (a store version, a
        progress count); ``0`` when the mark is new to it."""
        now = self.clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is None or seen[0] != mark:
                self._seen[key] = (mark, now)
                return 0.0
            return now - seen[1]

    def keep_only(self, keys: Iterable[str]) -> None:
        """Forget every key but ``keys`` (those no longer in the store), bounding the memory."""
        wanted = set(keys)
        self.forget(lambda key: key not in wanted)

    def forget(self, gone: Callable[[str], bool]) -> None:
        """Forget the keys for which ``gone`` is true."""
        with self._lock:
            for key in [k for k in self._seen if gone(k)]:
                del self._seen[key]
