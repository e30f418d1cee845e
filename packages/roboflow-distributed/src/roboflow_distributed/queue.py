"""The order in which a worker looks at the batches' queues: priority first, without starvation.

Each active batch's marker (``batch/active/{batch}``, :class:`~roboflow_distributed.records.ActiveBatch`)
carries its priority and whether it is suspended; a worker reads them all in one scan. Three of
every :data:`FAIR_EVERY` claims try the batches by priority (highest first; the oldest first within
one priority), the fourth tries them in a random order, so every batch that is not suspended gets
at least one in ``FAIR_EVERY * batches`` claims however busy the higher ones are. A suspended
batch's jobs are never claimed; a claim also compares the marker's version, so a batch suspended
between this read and the claim is not claimed from.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from roboflow_distributed import keys
from roboflow_distributed.records import ActiveBatch, decode
from roboflow_distributed.store import Store

__all__ = ["FAIR_EVERY", "Queue", "claim_order"]

FAIR_EVERY = 4
"""One claim in this many ignores priority (a random batch order), so no batch starves."""


@dataclass(frozen=True, slots=True)
class Queue:
    """A batch whose jobs may be claimed, with its marker's version (compared by the claim)."""

    batch: str
    priority: int
    marker_version: int


def claim_order(store: Store, *, fair: bool) -> list[Queue]:
    """The active, not suspended batches in the order to try their queues: by priority, or in a
    random order when ``fair``."""
    queues = []
    for entry in store.scan(keys.ACTIVE):
        marker = decode(entry, ActiveBatch).record if entry.value else ActiveBatch()
        if not marker.suspended:
            queues.append(Queue(keys.batch_of_active(entry.key), marker.priority, entry.version))
    if fair:
        random.shuffle(queues)
    else:
        queues.sort(key=lambda q: -q.priority)  # stable: the oldest first within a priority
    return queues
