"""Leases in the store: one owner at a time, a fencing number that grows with every new owner."""

from __future__ import annotations

import time

from roboflow_distributed import keys
from roboflow_distributed.records import Lock, encode, read
from roboflow_distributed.store import ABSENT, Compare, Store

__all__ = ["Lease"]


class Lease:
    """A named lease held by ``owner`` for ``ttl`` seconds after each :meth:`acquire` (which renews).

    Args:
        store: The coordination store.
        resource: The lock's name (``scanner``, ``merge/{batch}``).
        owner: Who holds it (the pod id).
        ttl: Seconds until an unrenewed lease expires and another owner may take it.
    """

    def __init__(self, store: Store, resource: str, owner: str, ttl: float) -> None:
        self.store = store
        self.key = keys.lock(resource)
        self.owner = owner
        self.ttl = ttl
        self.fencing = 0
        self._expires_at = 0.0

    @property
    def held(self) -> bool:
        """Whether this owner holds the lease now (as of its last acquire)."""
        return self.fencing > 0 and time.time() < self._expires_at

    def acquire(self) -> bool:
        """Take the lease if it is free, expired or already ours (then renew it); whether we hold it."""
        now = time.time()
        current = read(self.store, self.key, Lock)
        if current is None:
            fencing, compare = 1, Compare(self.key, ABSENT)
        else:
            lock = current.record
            if lock.owner != self.owner and lock.expires_at > now:
                return False
            fencing = lock.fencing if lock.owner == self.owner else lock.fencing + 1
            compare = Compare(self.key, current.version)
        won = self.store.txn(
            [compare], {self.key: encode(Lock(owner=self.owner, fencing=fencing, expires_at=now + self.ttl))}
        )
        self.fencing = fencing if won else 0
        self._expires_at = now + self.ttl if won else 0.0
        return won

    def renew(self) -> bool:
        """Extend the lease only while it is still ours under the same fencing number; whether it is.

        Unlike :meth:`acquire` it never takes a lease that is free or expired: a holder that lost
        it (another owner came and went meanwhile) must not carry on as if nothing happened.
        """
        current = read(self.store, self.key, Lock)
        if current is None or current.record.owner != self.owner or current.record.fencing != self.fencing:
            return False
        lock = Lock(owner=self.owner, fencing=self.fencing, expires_at=time.time() + self.ttl)
        return self.store.txn([Compare(self.key, current.version)], {self.key: encode(lock)})

    def release(self) -> None:
        """Give the lease up if we hold it."""
        current = read(self.store, self.key, Lock)
        if current is not None and current.record.owner == self.owner:
            self.store.txn([Compare(self.key, current.version)], deletes=[self.key])
        self.fencing = 0
