"""The coordination store: one protocol, SQLite (embedded default), etcd and TiKV backends.

``open_store(url)`` picks the backend from the URL (``sqlite://``, ``etcd://``, ``tikv://``); its
docstring lists the URL forms and the defaults taken from the environment.
"""

from typing import Any

from roboflow_distributed.store._base import ABSENT, Compare, Entry, Store
from roboflow_distributed.store._open import SCHEMES, backend, default_store_url, open_store
from roboflow_distributed.store._sqlite import SqliteStore

__all__ = [
    "ABSENT",
    "DEFAULT_STORE_URL",
    "SCHEMES",
    "Compare",
    "Entry",
    "EtcdStore",
    "SqliteStore",
    "Store",
    "TikvStore",
    "default_store_url",
    "open_store",
]

DEFAULT_STORE_URL: str
"""``sqlite:///<working directory>/.roboflow/state.db``, resolved each time it is read."""


def __getattr__(name: str) -> Any:
    # etcd and TiKV are optional extras: their clients are imported only when asked for
    if name == "DEFAULT_STORE_URL":
        return default_store_url()
    if name == "EtcdStore":
        return backend("etcd")
    if name == "TikvStore":
        return backend("tikv")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
