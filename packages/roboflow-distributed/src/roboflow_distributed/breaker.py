"""A circuit breaker around the coordination store: after repeated failures, fail fast for a while."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from roboflow_core import CoordinationError
from roboflow_distributed.metrics import STORE_DURATION, STORE_ERRORS
from roboflow_distributed.store import Compare, Entry, Store

__all__ = ["GuardedStore"]

_T = TypeVar("_T")


class GuardedStore:
    """A :class:`Store` that stops calling an unreachable store for ``cooldown`` seconds after
    ``threshold`` consecutive :class:`CoordinationError` s, raising at once instead (so a pod with a
    dead store backs off instead of piling up timeouts); one call is let through after the cooldown.
    """

    def __init__(self, inner: Store, *, threshold: int = 3, cooldown: float = 5.0) -> None:
        self.inner = inner
        self.url = inner.url
        self.threshold = threshold
        self.cooldown = cooldown
        self._failures = 0
        self._open_until = 0.0
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        """Whether calls currently fail fast."""
        return time.monotonic() < self._open_until

    def _call(self, op: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        if self.is_open:
            raise CoordinationError(
                "store unavailable (circuit open after repeated failures)", url=self.url, op=op
            )
        start = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        except CoordinationError:
            STORE_ERRORS.add(1, {"op": op})
            with self._lock:
                self._failures += 1
                if self._failures >= self.threshold:
                    self._open_until = time.monotonic() + self.cooldown
            raise
        finally:
            STORE_DURATION.record(time.perf_counter() - start, {"op": op})
        with self._lock:
            self._failures = 0
            self._open_until = 0.0
        return result

    def get(self, key: str) -> Entry | None:
        return self._call("get", self.inner.get, key)

    def scan(self, prefix: str, *, limit: int | None = None) -> list[Entry]:
        return self._call("scan", self.inner.scan, prefix, limit=limit)

    def txn(
        self,
        compares: Sequence[Compare] = (),
        puts: Mapping[str, bytes] | None = None,
        deletes: Iterable[str] = (),
    ) -> bool:
        return self._call("txn", self.inner.txn, compares, puts, deletes)

    def close(self) -> None:
        self.inner.close()
