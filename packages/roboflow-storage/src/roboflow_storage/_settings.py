"""Storage's settings from the environment, read at once into one typed object."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from roboflow_core.env import env_float, env_int
from roboflow_storage._location import normalize_endpoint
from roboflow_storage._retry import RetryPolicy

__all__ = ["DEFAULT_BUFFER_MAX_BYTES", "DOWNLOAD_CONCURRENCY", "DOWNLOAD_PART_SIZE", "StorageSettings"]

DEFAULT_BUFFER_MAX_BYTES = 16 << 30
"""Default bound of the spool (``ROBOFLOW_BUFFER_MAX_BYTES``)."""
DOWNLOAD_PART_SIZE = 64 << 20
"""Default bytes per ranged GET of a spool download (``ROBOFLOW_DOWNLOAD_PART_BYTES``)."""
DOWNLOAD_CONCURRENCY = 4
"""Default ranged GETs in flight in a spool download (``ROBOFLOW_DOWNLOAD_CONCURRENCY``)."""
_RETRY = RetryPolicy()


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageSettings:
    """What the environment sets for storage; each field names its variable.

    Attributes:
        buffer_dir: ``ROBOFLOW_BUFFER_DIR``: where the spool makes its private directory
            (default: the temp directory).
        buffer_max_bytes: ``ROBOFLOW_BUFFER_MAX_BYTES``: bound on the spool's files.
        download_part_bytes: ``ROBOFLOW_DOWNLOAD_PART_BYTES``: bytes per ranged GET of a download.
        download_concurrency: ``ROBOFLOW_DOWNLOAD_CONCURRENCY``: ranged GETs in flight.
        max_retries: ``ROBOFLOW_STORAGE_MAX_RETRIES``: retries of one request (0: none).
        retry_timeout_s: ``ROBOFLOW_STORAGE_RETRY_TIMEOUT_SECS``: how long one request rides out
            an outage before the operation fails as transient.
        allowed_endpoints: ``ROBOFLOW_ALLOWED_ENDPOINTS`` (comma or space separated), normalized:
            endpoints a URL may name besides the one the credentials are for, and the plain
            ``http://`` ones allowed.
    """

    buffer_dir: str
    buffer_max_bytes: int = DEFAULT_BUFFER_MAX_BYTES
    download_part_bytes: int = DOWNLOAD_PART_SIZE
    download_concurrency: int = DOWNLOAD_CONCURRENCY
    max_retries: int = _RETRY.max_retries
    retry_timeout_s: float = _RETRY.retry_timeout_s
    allowed_endpoints: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StorageSettings:
        """The settings of the environment (``os.environ`` by default).

        Raises:
            ConfigError: A variable is not a number of the right kind and sign (names it).
        """
        env = os.environ if env is None else env
        return cls(
            buffer_dir=env.get("ROBOFLOW_BUFFER_DIR") or tempfile.gettempdir(),
            buffer_max_bytes=env_int("ROBOFLOW_BUFFER_MAX_BYTES", DEFAULT_BUFFER_MAX_BYTES, env=env),
            download_part_bytes=env_int("ROBOFLOW_DOWNLOAD_PART_BYTES", DOWNLOAD_PART_SIZE, env=env),
            download_concurrency=env_int("ROBOFLOW_DOWNLOAD_CONCURRENCY", DOWNLOAD_CONCURRENCY, env=env),
            max_retries=env_int("ROBOFLOW_STORAGE_MAX_RETRIES", _RETRY.max_retries, allow_zero=True, env=env),
            retry_timeout_s=env_float(
                "ROBOFLOW_STORAGE_RETRY_TIMEOUT_SECS", _RETRY.retry_timeout_s, allow_zero=True, env=env
            ),
            allowed_endpoints=frozenset(
                normalize_endpoint(e)
                for e in env.get("ROBOFLOW_ALLOWED_ENDPOINTS", "").replace(" ", ",").split(",")
                if e
            ),
        )

    def retry(self) -> RetryPolicy:
        """The default :class:`RetryPolicy` with this environment's retries and retry timeout."""
        return RetryPolicy(max_retries=self.max_retries, retry_timeout_s=self.retry_timeout_s)
