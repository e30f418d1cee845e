"""One asyncio event loop in a dedicated daemon thread, driven from synchronous code.

The etcd and TiKV clients are asynchronous. Each store owns a :class:`LoopThread` and submits its
coroutines to it, so the store's synchronous API works from any thread, including threads that run
an event loop of their own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")

_GRACE_S = 2.0
"""How much longer than its own timeout a caller waits for a coroutine that ignores cancellation."""


class LoopThread:
    """An event loop running forever in a daemon thread until :meth:`close`.

    Args:
        name: The thread's name (shows in thread dumps).
    """

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._pid = os.getpid()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def run(self, coro: Coroutine[Any, Any, T], *, timeout_s: float) -> T:
        """Run ``coro`` on the loop and wait for its result.

        Args:
            coro: The coroutine; it is cancelled when it runs longer than ``timeout_s``.
            timeout_s: Seconds before the coroutine is cancelled.

        Returns:
            What the coroutine returned.

        Raises:
            TimeoutError: The coroutine did not finish in time.
            RuntimeError: The loop is closed (or closed while the call ran), was inherited through
                ``fork``, or this is its own thread (waiting there would deadlock).
        """
        problem = self._unusable()
        if problem:
            coro.close()
            raise RuntimeError(problem)
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout_s), self._loop)
        try:
            return future.result(timeout_s + _GRACE_S)
        except concurrent.futures.CancelledError as err:
            raise RuntimeError("the store was closed while the call ran") from err
        except BaseException:
            future.cancel()
            raise

    def _unusable(self) -> str | None:
        if self._closed:
            return "the store is closed"
        if os.getpid() != self._pid:
            return "the store was opened before fork(); open a new one in this process"
        if threading.current_thread() is self._thread:
            return "a store's own event loop thread cannot wait on the store"
        return None

    def close(self, cleanup: Coroutine[Any, Any, object] | None = None, *, timeout_s: float = 5.0) -> None:
        """Run ``cleanup`` (errors ignored), stop the loop and join the thread. Safe to call twice.

        Args:
            cleanup: A last coroutine to run on the loop, e.g. closing a client.
            timeout_s: Seconds allowed for ``cleanup`` and again for the thread to end.
        """
        with self._lock:
            usable = not self._closed and os.getpid() == self._pid and self._thread.is_alive()
            own_thread = threading.current_thread() is self._thread  # cannot wait on itself
            self._closed = True
        if cleanup is not None and usable and not own_thread:
            future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(cleanup, timeout_s), self._loop)
            try:
                future.result(timeout_s + _GRACE_S)
            except Exception:  # closing is best effort: the connection may already be gone
                future.cancel()
        elif cleanup is not None:
            cleanup.close()
        if usable:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if not own_thread:
                self._thread.join(timeout_s)
