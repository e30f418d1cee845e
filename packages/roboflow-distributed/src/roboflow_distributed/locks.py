"""Leases in the store: one owner at a time, a fencing number that grows with every new owner.

A lock record names its holder, its fencing number and its ttl, and holds no time: pods' clocks
are never compared (see :mod:`roboflow_distributed.liveness`). The holder renews by rewriting the
record, which gives it a new store version; another pod takes the lease over only after it has
seen one version stand still for the record's ttl on its own monotonic clock. The holder counts
its lease valid until ttl after it *sent* its last successful write, which is never later than any
other pod can see it expire.
"""

from __future__ import annotations

from roboflow_distributed import keys
from roboflow_distributed.liveness import Staleness
from roboflow_distributed.records import Lock, encode, read
from roboflow_distributed.store import ABSENT, Compare, Store

__all__ = ["Lease"]


class Lease:
    """A named lease held by ``owner`` for ``ttl`` seconds after each :meth:`acquire` (which renews).

    Args:
        store: The coordination store.
        resource: The lock's name (``scanner``, ``dataset/{hash}``).
        owner: Who holds it (the pod id).
        ttl: Seconds an unrenewed lease lasts, on any observer's clock.
        observer: Remembers since when the lock has stood still; share one between the leases a
            role creates for one resource over time (default: this lease's own, on
            ``time.monotonic``).
    """

    def __init__(
        self, store: Store, resource: str, owner: str, ttl: float, *, observer: Staleness | None = None
    ) -> None:
        self.store = store
        self.key = keys.lock(resource)
        self.owner = owner
        self.ttl = ttl
        self.observer = observer or Staleness()
        self.fencing = 0
        self._valid_until = float("-inf")

    def acquire(self) -> bool:
        """Take the lease if it is free, expired or already ours (then renew it); whether we hold it."""
        sent = self.observer.clock()
        current = read(self.store, self.key, Lock)
        if current is None:
            fencing, compare = 1, Compare(self.key, ABSENT)
        else:
            lock = current.record
            if lock.owner != self.owner and self.observer.age(self.key, current.version) < lock.ttl:
                self.fencing = 0
                return False
            fencing = lock.fencing if lock.owner == self.owner else lock.fencing + 1
            compare = Compare(self.key, current.version)
        record = Lock(owner=self.owner, fencing=fencing, ttl=self.ttl)
        won = self.store.txn([compare], {self.key: encode(record)})
        self.fencing = fencing if won else 0
        self._valid_until = sent + self.ttl if won else float("-inf")
        return won

    def renew(self) -> bool:
        """Extend the lease only while it is still ours under the same fencing number; whether it is.

        Unlike :meth:`acquire` it never takes a lease that is free or expired: a holder that lost
        it (another owner came and went meanwhile) must not carry on as if nothing happened.
        """
        sent = self.observer.clock()
        current = read(self.store, self.key, Lock)
        if current is None or current.record.owner != self.owner or current.record.fencing != self.fencing:
            return False
        record = Lock(owner=self.owner, fencing=self.fencing, ttl=self.ttl)
        if not self.store.txn([Compare(self.key, current.version)], {self.key: encode(record)}):
            return False
        self._valid_until = sent + self.ttl
        return True

    @property
    def held(self) -> bool:
        """Whether the lease is still ours by this pod's own clock: its last successful write
        (:meth:`acquire` or :meth:`renew`) was sent less than ttl ago."""
        return self.fencing > 0 and self.observer.clock() < self._valid_until

    def release(self) -> None:
        """Give the lease up if we hold it."""
        current = read(self.store, self.key, Lock)
        if current is not None and current.record.owner == self.owner:
            self.store.txn([Compare(self.key, current.version)], deletes=[self.key])
        self.fencing = 0
        self._valid_until = float("-inf")
