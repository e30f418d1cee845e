"""Run an iterator ahead of its consumer in a thread, through a bounded queue."""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from roboflow_core import telemetry

T = TypeVar("T")

_DONE = object()


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetcher(Generic[T]):
    """Iterate ``source`` in a background thread, at most ``depth`` items ahead.

    The producer blocks when the queue is full (back-pressure), so memory stays bounded by
    ``depth`` items (plus a batch being filled and one being consumed). Items cross the queue in
    batches of ``batch``, so that the threads wake each other once per batch rather than per item;
    the first item crosses alone, so that the consumer starts as soon as it is ready.
    An exception raised by the source is re-raised in the consumer at the position where it
    happened. Closing the prefetcher early stops the producer.

    Args:
        source: The iterable to run ahead.
        depth: How many items may wait in the queue.
        batch: How many items cross the queue together (the last batch may be short).
        name: Thread name, for debugging.
        stage: The telemetry stage the source's work counts as (see
            :func:`roboflow_core.telemetry.timed`); the thread runs in the creator's context.
    """

    def __init__(
        self,
        source: Iterable[T],
        *,
        depth: int = 8,
        batch: int = 1,
        name: str = "prefetch",
        stage: str | None = None,
    ) -> None:
        if depth < 1 or batch < 1:
            raise ValueError("depth and batch must be >= 1")
        self._batch = min(batch, depth)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, depth // self._batch))
        self._stop = threading.Event()
        self._source = source
        self._stage = stage
        self._thread = threading.Thread(target=telemetry.in_context(self._run), name=name, daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def _run(self) -> None:
        source = iter(self._source)
        items: list[T] = []
        size = 1  # the first item alone, then full batches
        try:
            while True:
                with self._clock():  # the source's time is the stage's (not the waits to put)
                    for item in itertools.islice(source, size):
                        items.append(item)
                if len(items) < size:  # the source has ended
                    break
                if not self._put(items):
                    return
                items, size = [], self._batch
        except BaseException as err:  # re-raised in the consumer, after the items before it
            if not items or self._put(items):
                self._put(_Failure(err))
            return
        if not items or self._put(items):
            self._put(_DONE)

    def _clock(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext() if self._stage is None else telemetry.timed(self._stage)

    def __iter__(self) -> Iterator[T]:
        try:
            while True:
                item = self._queue.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield from item  # type: ignore[misc]
        finally:
            self.close()

    def close(self) -> None:
        """Stop the producer and wait for its thread."""
        self._stop.set()
        self._thread.join()
        close = getattr(self._source, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prefetch(source: Iterable[T], depth: int = 8, *, name: str = "prefetch") -> Iterator[T]:
    """Shorthand for ``iter(Prefetcher(source, depth=depth))``."""
    return iter(Prefetcher(source, depth=depth, name=name))
