"""Timings and limits of the distributed roles, from the environment (names of the original kept)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields

from roboflow_core import CoordinationError
from roboflow_core.env import env_float, env_int
from roboflow_storage import RetryPolicy

__all__ = ["STORE_RETRY", "Settings", "store_down"]

STORE_RETRY = RetryPolicy(
    max_retries=sys.maxsize, initial_backoff_s=0.2, max_backoff_s=5.0, retry_timeout_s=float("inf")
)
"""How a pod retries an unreachable coordination store: for as long as it runs (each loop stops
retrying at shutdown)."""


def store_down(err: BaseException) -> bool:
    """Whether ``err`` means the coordination store is unreachable (worth waiting out)."""
    return isinstance(err, CoordinationError)


_ENV = {
    "poll_interval": "WORKER_POLL_INTERVAL_SECS",
    "heartbeat_interval": "WORKER_HEARTBEAT_INTERVAL_SECS",
    "heartbeat_timeout": "ROBOFLOW_HEARTBEAT_TIMEOUT_SECS",
    "stall_timeout": "WORKER_STALL_TIMEOUT_SECS",
    "job_timeout": "WORKER_JOB_TIMEOUT_SECS",
    "checkpoint_interval_frames": "WORKER_CHECKPOINT_INTERVAL_FRAMES",
    "checkpoint_interval_secs": "WORKER_CHECKPOINT_INTERVAL_SECS",
    "segment_frames": "WORKER_SEGMENT_FRAMES",
    "max_attempts": "WORKER_MAX_ATTEMPTS",
    "max_lost": "ROBOFLOW_MAX_LOST",
    "lock_ttl": "ROBOFLOW_LOCK_TTL_SECS",
    "scan_interval": "SCANNER_SCAN_INTERVAL_SECS",
    "scan_batch_size": "SCANNER_BATCH_SIZE",
    "finalizer_interval": "FINALIZER_POLL_INTERVAL_SECS",
    "merge_group": "FINALIZER_MERGE_GROUP",
    "reaper_interval": "ROBOFLOW_REAPER_INTERVAL_SECS",
    "shutdown_grace": "ROBOFLOW_SHUTDOWN_GRACE_SECS",
    "max_concurrent_jobs": "WORKER_MAX_CONCURRENT_JOBS",
    "publish_episodes": "FINALIZER_PUBLISH_EPISODES",
    "publish_interval": "FINALIZER_PUBLISH_INTERVAL_SECS",
    "retry_backoff": "WORKER_RETRY_BACKOFF_SECS",
}


@dataclass(frozen=True, slots=True)
class Settings:
    """How often the roles act and when they give up.

    Every field can be set by the environment variable in ``Settings.ENV`` (seconds unless the
    name says otherwise).
    """

    poll_interval: float = 2.0
    """A worker with nothing to do looks at the queue again after this long."""
    heartbeat_interval: float = 5.0
    """A pod writes its heartbeat this often."""
    heartbeat_timeout: float = 30.0
    """A pod whose heartbeat has not changed for this long (on the reaper's clock) is lost; the
    reaper re-queues its unit."""
    stall_timeout: float = 600.0
    """A conversion attempt that makes no progress (frames staged, bytes moved) for this long is
    abandoned by its pod and its unit re-queued as a failed attempt (Dead after ``max_attempts``)."""
    job_timeout: float = 3600.0
    """A conversion attempt running longer than this is abandoned like a stalled one."""
    checkpoint_interval_frames: int = 100
    checkpoint_interval_secs: float = 10.0
    segment_frames: int = 1800
    """A worker closes and uploads a segment of the episode every this many frames; a restarted
    unit resumes after the last uploaded segment (smaller: less work lost, more files to join)."""
    max_attempts: int = 3
    """Default conversion attempts (errors) of a unit before it is Dead (a batch may override)."""
    max_lost: int = 10
    """Times a unit may lose its worker (killed pod) before it is Dead."""
    lock_ttl: float = 60.0
    """Leases (scanner leadership, merge) expire once unrenewed for this long (on the clock of the
    pod that would take them over)."""
    scan_interval: float = 5.0
    scan_batch_size: int = 100
    finalizer_interval: float = 5.0
    merge_group: int = 100
    """Staged episodes the finalizer downloads and publishes at a time (bounds its local disk)."""
    reaper_interval: float = 10.0
    shutdown_grace: float = 15.0
    """On SIGTERM/SIGINT a worker finishes its unit if it can within this long, else releases it."""
    retry_backoff: float = 5.0
    """A unit that failed transiently is not claimed again before a backoff drawn up to this, doubled
    per attempt (:meth:`unit_retry`)."""
    max_concurrent_jobs: int = 1
    publish_episodes: int = 100
    """A watched batch publishes its converted recordings once this many wait ..."""
    publish_interval: float = 300.0
    """... or once the first of them waited this long."""
    """Jobs a pod's worker role converts at once; above 1 each in a process of its own
    (:mod:`~roboflow_distributed.pool`)."""

    ENV = _ENV

    def unit_retry(self) -> RetryPolicy:
        """The backoff between attempts of a unit that failed transiently."""
        return RetryPolicy(initial_backoff_s=self.retry_backoff, max_backoff_s=64 * self.retry_backoff)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Defaults overridden by the environment.

        Raises:
            ConfigError: A variable is not a positive number (names the variable).
        """
        defaults = cls()
        values: dict[str, float | int] = {}
        for field in fields(cls):
            read = env_int if field.type in ("int", int) else env_float
            values[field.name] = read(_ENV[field.name], getattr(defaults, field.name), env=env)
        return cls(**values)  # type: ignore[arg-type]
