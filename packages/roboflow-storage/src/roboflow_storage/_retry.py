"""How requests to an object store are retried, mapped onto obstore's ``RetryConfig``."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig


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
