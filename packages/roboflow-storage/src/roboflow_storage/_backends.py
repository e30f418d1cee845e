"""Build the obstore store for a :class:`Location`, with credentials from the environment.

A URL's ``endpoint`` and ``region`` win over the environment; credentials come only from it:

* ``s3://``: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
  ``AWS_REGION`` (or ``AWS_DEFAULT_REGION``), ``AWS_ENDPOINT_URL`` (any S3-compatible endpoint,
  e.g. MinIO). Anything else obstore finds in the environment (instance roles, web identity) applies.
* ``oss://``: ``OSS_ACCESS_KEY_ID``, ``OSS_ACCESS_KEY_SECRET``, ``OSS_ENDPOINT`` (required),
  ``OSS_REGION``. Alibaba OSS is reached through its S3-compatible API: a native endpoint such as
  ``oss-cn-hangzhou.aliyuncs.com`` becomes ``s3.oss-cn-hangzhou.aliyuncs.com`` with region
  ``cn-hangzhou``, and requests are virtual-hosted (``BUCKET.host``) as OSS requires.

Credentials go only where they were configured: an ``endpoint`` in a URL must be the one the
environment names (``AWS_ENDPOINT_URL`` / ``OSS_ENDPOINT``) or be listed in
``ROBOFLOW_ALLOWED_ENDPOINTS`` (comma-separated ``scheme://host[:port]``); otherwise anyone who can
submit a URL could have a pod sign requests with its credentials to a host of their choosing.
Plain HTTP is used only for an endpoint listed there with its ``http://`` scheme.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from obstore.store import LocalStore, MemoryStore, S3Store

from roboflow_storage._location import Location, normalize_endpoint
from roboflow_storage._retry import RetryPolicy
from roboflow_storage._settings import StorageSettings
from roboflow_storage._translate import translate_errors
from roboflow_storage.errors import StorageError

if TYPE_CHECKING:
    from obstore.store import ObjectStore

_OSS_HOST = re.compile(r"^(?:s3\.)?oss-(?P<region>[a-z0-9-]+?)(?P<internal>-internal)?\.aliyuncs\.com$")
_TRUE = frozenset({"1", "true", "yes", "on"})
_memory_stores: dict[str, MemoryStore] = {}
_memory_lock = threading.Lock()


def _first(options: dict[str, str], key: str, *env_names: str) -> str | None:
    return options.get(key) or _env(*env_names)


def _flag(options: dict[str, str], key: str) -> bool | None:
    return None if key not in options else options[key].lower() in _TRUE


def _env(*names: str) -> str | None:
    return next((os.environ[name] for name in names if os.environ.get(name)), None)


def _check_endpoint(loc: Location, endpoint: str | None, configured: str | None, variable: str) -> None:
    """Refuse a URL endpoint the credentials were not configured for, and unlisted plain HTTP."""
    allowed = StorageSettings.from_env().allowed_endpoints
    given = normalize_endpoint(loc.options["endpoint"]) if loc.options.get("endpoint") else None
    if given and given not in allowed and (configured is None or given != normalize_endpoint(configured)):
        where = f"{variable}={configured}" if configured else f"no {variable}"
        raise StorageError(
            f"endpoint {given} is not the one this process's credentials are for ({where}); "
            "list it in ROBOFLOW_ALLOWED_ENDPOINTS to send requests there",
            transient=False,
            url=loc.display(),
        )
    target = normalize_endpoint(endpoint) if endpoint else None
    if target and target.startswith("http://") and target not in allowed:
        raise StorageError(
            f"plain HTTP to {target} is not allowed (credentials and data would travel unencrypted); "
            "list that http:// endpoint in ROBOFLOW_ALLOWED_ENDPOINTS to allow it",
            transient=False,
            url=loc.display(),
        )


def _s3_settings(loc: Location) -> dict[str, Any]:
    o = loc.options
    configured = _env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
    endpoint = o.get("endpoint") or configured
    _check_endpoint(loc, endpoint, configured, "AWS_ENDPOINT_URL")
    return {
        "endpoint": endpoint,
        "region": _first(o, "region", "AWS_REGION", "AWS_DEFAULT_REGION"),
        "access_key_id": _env("AWS_ACCESS_KEY_ID"),
        "secret_access_key": _env("AWS_SECRET_ACCESS_KEY"),
        "session_token": _env("AWS_SESSION_TOKEN"),
        "virtual_hosted_style_request": _flag(o, "virtual_hosted"),
        "skip_signature": _flag(o, "anonymous"),
    }


def oss_endpoint(endpoint: str, bucket: str, *, virtual_hosted: bool = True) -> tuple[str, str | None]:
    """The S3-compatible endpoint URL and region for an OSS endpoint.

    Args:
        endpoint: ``OSS_ENDPOINT``, with or without a scheme (https is assumed).
        bucket: The bucket, put in front of the host for virtual-hosted requests.
        virtual_hosted: Whether requests go to ``BUCKET.host`` (OSS requires it).

    Returns:
        The endpoint URL and the region (``None`` when the host is not an aliyuncs.com one).
    """
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    host, region = parts.netloc, None
    match = _OSS_HOST.match(host)
    if match:
        region = match["region"]
        host = f"s3.oss-{region}{match['internal'] or ''}.aliyuncs.com"
    if virtual_hosted:
        host = f"{bucket}.{host}"
    return f"{parts.scheme}://{host}", region


def _oss_settings(loc: Location) -> dict[str, Any]:
    o = loc.options
    configured = _env("OSS_ENDPOINT")
    raw = o.get("endpoint") or configured
    if raw is None:
        raise StorageError(
            "no OSS endpoint; set OSS_ENDPOINT (e.g. oss-cn-hangzhou.aliyuncs.com) or ?endpoint=",
            transient=False,
            url=loc.display(),
        )
    _check_endpoint(loc, raw, configured, "OSS_ENDPOINT")
    virtual_hosted = _flag(o, "virtual_hosted") is not False
    endpoint, region = oss_endpoint(raw, loc.bucket, virtual_hosted=virtual_hosted)
    return {
        "endpoint": endpoint,
        "region": _first(o, "region", "OSS_REGION") or region,
        "access_key_id": _env("OSS_ACCESS_KEY_ID"),
        "secret_access_key": _env("OSS_ACCESS_KEY_SECRET"),
        "session_token": _env("OSS_SESSION_TOKEN"),
        "virtual_hosted_style_request": virtual_hosted,
        "skip_signature": _flag(o, "anonymous"),
    }


def build_store(loc: Location, retry: RetryPolicy) -> tuple[ObjectStore, tuple[str, ...]]:
    """Create the obstore store behind a location.

    Returns:
        The store and the secret values in use (to keep out of error messages).

    Raises:
        StorageError: Missing settings, an endpoint that is not allowed (see the module
            docstring) or a configuration obstore rejects.
    """
    if loc.scheme == "file":
        with translate_errors(loc.display(), "open directory"):
            return LocalStore(loc.prefix, mkdir=True), ()
    if loc.scheme == "memory":
        with _memory_lock:
            return _memory_stores.setdefault(loc.bucket, MemoryStore()), ()
    settings = _s3_settings(loc) if loc.scheme == "s3" else _oss_settings(loc)
    settings = {key: value for key, value in settings.items() if value is not None}
    allow_http = normalize_endpoint(str(settings.get("endpoint") or "https://")).startswith("http://")
    secrets = tuple(str(settings[k]) for k in ("secret_access_key", "session_token") if k in settings)
    with translate_errors(loc.display(), "configure store", secrets):
        store = _s3_store(loc.bucket, tuple(sorted(settings.items())), allow_http, retry)
    return store, secrets


@functools.lru_cache(maxsize=32)
def _s3_store(
    bucket: str, settings: tuple[tuple[str, Any], ...], allow_http: bool, retry: RetryPolicy
) -> S3Store:
    """One client per bucket and settings, shared by the storages of a process.

    Creating one costs milliseconds (TLS roots, connection pool), and a conversion opens several
    storages on one bucket (resolving inputs, sizing, reading); sharing also reuses connections.
    """
    return S3Store(
        bucket,
        client_options=retry.client_options(allow_http=allow_http),
        retry_config=retry.retry_config(),
        **dict(settings),
    )
