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

__all__ = ["ABSENT", "Compare", "Entry", "Store"]

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
