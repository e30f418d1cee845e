"""How operations are retried: one :class:`RetryPolicy` (exponential backoff, full jitter).

It drives obstore's own retries of each object-store request (``retry_config``) and every other
retry loop of Roboflow (:func:`retry_call`: a pod riding out an unreachable coordination store,
a scanner retrying a listing), so there is one backoff rule, not one per loop.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

import msgspec

from roboflow_core.errors import is_transient

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig

_T = TypeVar("_T")


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Retries with exponential backoff and full jitter on transient errors.

    obstore (the Rust ``object_store`` client) retries 5xx answers, dropped and refused
    connections, and timeouts of read-only requests; each wait is drawn at random up to
    ``min(initial_backoff_s * base**attempt, max_backoff_s)``. Client errors (4xx) are not retried.

    Attributes:
        max_retries: Retries of one request before its error is raised; 0 disables retries.
        initial_backoff_s: First backoff ceiling, in seconds.
        max_backoff_s: Largest backoff ceiling, in seconds.
        base: Growth factor of the backoff ceiling.
        retry_timeout_s: No retry starts later than this after the first attempt (keep it under
            5 minutes: retried requests reuse their signature).
        connect_timeout_s: Time allowed to open a connection.
    """

    max_retries: int = 10
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 15.0
    base: float = 2.0
    retry_timeout_s: float = 180.0
    connect_timeout_s: float = 5.0

    def retry_config(self) -> RetryConfig:
        """The obstore ``retry_config`` for this policy."""
        return {
            "max_retries": self.max_retries,
            "retry_timeout": timedelta(seconds=self.retry_timeout_s),
            "backoff": {
                "init_backoff": timedelta(seconds=self.initial_backoff_s),
                "max_backoff": timedelta(seconds=self.max_backoff_s),
                "base": self.base,
            },
        }

    def client_options(self, *, allow_http: bool) -> ClientConfig:
        """The obstore ``client_options`` for this policy."""
        return {"allow_http": allow_http, "connect_timeout": timedelta(seconds=self.connect_timeout_s)}

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (from 0): full jitter up to the ceiling."""
        ceiling = min(self.initial_backoff_s * self.base ** min(retry, 64), self.max_backoff_s)
        return random.uniform(0.0, ceiling)


def retry_call(
    op: Callable[[], _T],
    policy: RetryPolicy,
    *,
    retryable: Callable[[BaseException], bool] = is_transient,
    wait: Callable[[float], bool] | None = None,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> _T:
    """Run ``op``, retrying its retryable errors with ``policy``'s backoff.

    Args:
        op: The operation.
        policy: ``max_retries`` retries at most, waits from :meth:`RetryPolicy.backoff`, none
            started later than ``retry_timeout_s`` after the first attempt.
        retryable: Which errors are retried (default: :func:`is_transient`).
        wait: Waits the given seconds; returns ``False`` to stop retrying (a shutdown).
            Default: ``time.sleep``.
        on_retry: Called with each retried error and the wait before the retry (to log it).

    Raises:
        Exception: The error of the last attempt, when it is not retryable or retries are over.
    """
    started = time.monotonic()
    retry = 0
    while True:
        try:
            return op()
        except Exception as err:
            late = time.monotonic() - started > policy.retry_timeout_s
            if not retryable(err) or retry >= policy.max_retries or late:
                raise
            delay = policy.backoff(retry)
            if on_retry is not None:
                on_retry(err, delay)
            if wait is None:
                time.sleep(delay)
            elif not wait(delay):
                raise
            retry += 1
