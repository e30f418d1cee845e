"""The coordination store: one protocol, SQLite (embedded default), etcd and TiKV backends."""

from roboflow_distributed.store._base import ABSENT, Compare, Entry, Store

__all__ = ["ABSENT", "Compare", "Entry", "Store"]
