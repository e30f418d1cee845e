"""The coordination store contract shared by every backend (SQLite, etcd, TiKV).

A store is a small transactional key-value map. Every key carries a **version**: a positive
integer that changes (strictly increases) on every write of that key; ``0`` means "absent".
All coordination (claims, locks, phase switches) is built from one primitive, :meth:`Store.txn`:
compare the versions of some keys, and only if every compare holds apply puts and deletes,
atomically. Two callers racing on the same compare never both win.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from roboflow_core import CoordinationError

__all__ = ["ABSENT", "Compare", "Entry", "Store", "check_txn", "decode_key", "parse_endpoints", "prefix_end"]

ABSENT = 0
"""The version a :class:`Compare` uses to require that a key does not exist."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored key with its value and current version (> 0)."""

    key: str
    value: bytes
    version: int


@dataclass(frozen=True, slots=True)
class Compare:
    """Require ``key`` to be at ``version`` (``ABSENT``: the key must not exist)."""

    key: str
    version: int


@runtime_checkable
class Store(Protocol):
    """A transactional key-value store with per-key versions.

    Keys are ``str`` (UTF-8, ``/``-separated), values ``bytes``. Implementations are safe to use
    from several threads of one process and from many processes at once.
    """

    url: str
    """Where the store is, without credentials (for logs and errors)."""

    def get(self, key: str) -> Entry | None:
        """The entry at ``key``, or ``None`` when absent."""
        ...

    def scan(self, prefix: str, *, limit: int | None = None) -> list[Entry]:
        """Entries whose key starts with ``prefix``, in ascending key order (at most ``limit``)."""
        ...

    def txn(
        self,
        compares: Sequence[Compare] = (),
        puts: Mapping[str, bytes] | None = None,
        deletes: Iterable[str] = (),
    ) -> bool:
        """Atomically: if every compare holds, apply ``puts`` and ``deletes``; whether it applied.

        A delete of an absent key is not an error. A key must not be both put and deleted.

        Raises:
            CoordinationError: The store cannot be reached or refused the transaction (a failed
                compare is not an error: it returns ``False``).
        """
        ...

    def close(self) -> None:
        """Release connections; the store is unusable afterwards. Safe to call twice."""
        ...


def check_txn(puts: Mapping[str, bytes] | None, deletes: Iterable[str]) -> tuple[dict[str, bytes], list[str]]:
    """The puts and the distinct deletes of a transaction, checked (a helper for backends).

    Raises:
        CoordinationError: A key is both put and deleted, or a value is not ``bytes``.
    """
    put_map = dict(puts or {})
    for key, value in put_map.items():
        if not isinstance(value, bytes | bytearray | memoryview):
            raise CoordinationError(f"values are bytes, got {type(value).__name__}", key=key)
    delete_list = list(dict.fromkeys(deletes))
    both = put_map.keys() & set(delete_list)
    if both:
        raise CoordinationError("a transaction must not both put and delete a key", key=min(both))
    return {k: bytes(v) for k, v in put_map.items()}, delete_list


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key above every key that starts with ``prefix``; ``None``: no such bound.

    (UTF-8 never contains ``0xff``, so for an encoded ``str`` this is ``None`` only for ``b""``.)
    """
    end = prefix.rstrip(b"\xff")
    return end[:-1] + bytes([end[-1] + 1]) if end else None


def decode_key(raw: bytes, *, url: str) -> str:
    """A stored key as ``str``.

    Raises:
        CoordinationError: The key is not UTF-8 (it was not written through this API).
    """
    try:
        return raw.decode()
    except UnicodeDecodeError as err:
        raise CoordinationError(f"the store holds a key that is not UTF-8: {raw!r}", url=url) from err


def parse_endpoints(endpoints: str | Iterable[str], *, default_port: int = 2379) -> list[tuple[str, int]]:
    """``host:port`` endpoints (comma-separated or a list) as ``(host, port)`` pairs.

    A missing port is ``default_port``; IPv6 hosts are written in brackets (``[::1]:2379``).

    Raises:
        CoordinationError: No endpoint, a bad port, or credentials in an endpoint.
    """
    items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    parsed: list[tuple[str, int]] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if "@" in item:
            raise CoordinationError("store endpoints must not carry credentials (user:password@)")
        host, port = item.removeprefix("http://"), str(default_port)
        if host.startswith("["):
            host, _, rest = host[1:].partition("]")
            port = rest.removeprefix(":") or port
        elif host.count(":") == 1:
            host, port = host.split(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise CoordinationError(f"bad store endpoint {item!r}: expected host:port")
        parsed.append((host, int(port)))
    if not parsed:
        raise CoordinationError("no store endpoint given: expected host:port[,host:port...]")
    return parsed
