"""Open a coordination store from a URL (:func:`open_store`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from roboflow_core import CoordinationError
from roboflow_distributed.store._base import Store
from roboflow_distributed.store._security import parse_store_query

__all__ = ["DEFAULT_STORE_URL", "SCHEMES", "backend", "default_store_url", "open_store"]

SCHEMES = ("sqlite", "etcd", "tikv")
"""The URL schemes :func:`open_store` knows."""

DEFAULT_STORE_URL: str
"""``sqlite:///<working directory>/.roboflow/state.db``, resolved each time it is read."""


def default_store_url() -> str:
    """The embedded default store: ``.roboflow/state.db`` under the current working directory."""
    return f"sqlite://{(Path.cwd() / '.roboflow' / 'state.db').as_posix()}"


def __getattr__(name: str) -> str:
    if name == "DEFAULT_STORE_URL":
        return default_store_url()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(url: str | None = None) -> Store:
    """Open the coordination store at ``url``.

    =====================================  =====================================================
    URL                                    store
    =====================================  =====================================================
    ``sqlite:///abs/path/state.db``        :class:`SqliteStore`, absolute path (three slashes)
    ``sqlite://relative/path/state.db``    :class:`SqliteStore`, relative to the working directory
    ``etcd://host:port[,host2:port2]``     :class:`EtcdStore` (port 2379 when left out)
    ``tikv://pd1:2379[,pd2:2379]``         :class:`TikvStore` through the PD endpoints
    =====================================  =====================================================

    ``etcd://`` and ``tikv://`` URLs take TLS options (``?ca=PATH&cert=PATH&key=PATH``), and
    ``etcd://`` a user (``user=NAME``, password in ``ROBOFLOW_ETCD_PASSWORD``); the environment
    gives what the URL leaves out (``ROBOFLOW_ETCD_*``, ``TIKV_CA_PATH``, ...): see
    :mod:`roboflow_distributed.store._security`.

    The scheme is case-insensitive. Without a URL: ``$ROBOFLOW_STORE``, else TiKV at
    ``$TIKV_PD_ENDPOINTS``, else the embedded default :data:`DEFAULT_STORE_URL`
    (``sqlite:///<working directory>/.roboflow/state.db``).

    Args:
        url: A store URL; ``None``: ``$ROBOFLOW_STORE``, else ``tikv://$TIKV_PD_ENDPOINTS``, else
            :data:`DEFAULT_STORE_URL`.

    Returns:
        The open store; close it with ``close()``.

    Raises:
        CoordinationError: Unknown scheme, malformed URL, or the store cannot be opened.
    """
    if url is None:
        url = _url_from_env()
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        shown = f"{scheme!r}" if sep else "none"
        raise CoordinationError(f"unknown coordination store URL scheme {shown}; use one of {known}")
    if scheme == "sqlite":
        from roboflow_distributed.store._sqlite import SqliteStore

        if not rest or rest == "/":
            raise CoordinationError("a sqlite:// URL needs a file path, e.g. sqlite:///abs/state.db")
        return SqliteStore(rest)
    endpoints, _, query = rest.partition("?")
    options = parse_store_query(scheme, query)
    if scheme == "etcd":
        return backend("etcd")(endpoints, tls=options.tls, credentials=options.credentials)  # type: ignore[no-any-return]
    return backend("tikv")(endpoints, tls=options.tls)  # type: ignore[no-any-return]


def backend(scheme: str) -> Any:
    """The store class of an optional backend (``etcd``: ``EtcdStore``, ``tikv``: ``TikvStore``).

    Raises:
        CoordinationError: Its client library is not installed (names the extra to install).
    """
    try:
        if scheme == "etcd":
            from roboflow_distributed.store._etcd import EtcdStore

            return EtcdStore
        from tikv_client import asynchronous  # noqa: F401 - fail here, not at the first call

        from roboflow_distributed.store._tikv import TikvStore
    except ImportError as err:
        raise CoordinationError(
            f"{scheme}:// stores need the {err.name} package: pip install 'roboflow-distributed[{scheme}]'"
        ) from err
    return TikvStore


def _url_from_env() -> str:
    url = os.environ.get("ROBOFLOW_STORE", "").strip()
    if url:
        return url
    pd = os.environ.get("TIKV_PD_ENDPOINTS", "").strip()
    if pd:
        return f"tikv://{pd}"
    return default_store_url()
