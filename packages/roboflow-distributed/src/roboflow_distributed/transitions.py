"""Every change of a coordination record's state: named, typed, pure functions.

Each takes a record and explicit keyword arguments and returns the new record, stamped
``updated_at=now`` (a :class:`~roboflow_distributed.records.MergeState` has no such field). Where
a transition has a rule (only a Pending unit is claimed, only a Running batch is suspended), an
illegal one raises :class:`~roboflow_core.ConflictError`. Nothing here reads or writes the store:
the caller writes the new record by compare-and-swap on the version it read, so a record that
changed meanwhile is never overwritten. This is the one place a record's state changes; creating
a record (submit, discovery, a merge's start) is not a transition.

Work units: Pending -> Processing (:func:`claim`) -> Complete (:func:`complete`), back to Pending
or on to Dead (:func:`fail`, :func:`stall`, :func:`lose`), back to Pending unchanged
(:func:`release`), Cancelled (:func:`cancel`); Dead, Failed or Cancelled -> Pending (:func:`retry`).

Batches: Pending -> Discovering (:func:`discover`) -> Running (:func:`run`) <-> Suspended
(:func:`suspend`, :func:`resume`); Running -> Merging (:func:`start_merge`) -> Complete
(:func:`finish_merge`) | Failed (:func:`fail_merge`); a watched batch is closed
(:func:`close_watch`) or fails publishing (:func:`fail_publish`); Cancelled (:func:`cancel_batch`);
a failed merge -> Merging (:func:`retry_merge`). A merge's record grows (:func:`extend_merge`) and
counts what it published (:func:`record_published`).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from roboflow_core import ConflictError, StalledError
from roboflow_distributed.records import BatchPhase, BatchStatus, MergeState, UnitStatus, WorkUnit

__all__ = [
    "cancel",
    "cancel_batch",
    "claim",
    "close_watch",
    "complete",
    "discover",
    "extend_merge",
    "fail",
    "fail_merge",
    "fail_publish",
    "finish_merge",
    "lose",
    "record_published",
    "release",
    "resume",
    "retry",
    "retry_merge",
    "run",
    "stall",
    "start_merge",
    "suspend",
]

_RETRIED = (UnitStatus.DEAD, UnitStatus.FAILED, UnitStatus.CANCELLED)

# --- work units ------------------------------------------------------------------------------


def _job(unit: WorkUnit) -> str:
    return f"{unit.batch}/{unit.id}"


def _processing(unit: WorkUnit, verb: str) -> None:
    if unit.status is not UnitStatus.PROCESSING:
        raise ConflictError(f"job is {unit.status}; only a processing job is {verb}", job=_job(unit))


def claim(unit: WorkUnit, *, owner: str, now: float) -> WorkUnit:
    """A Pending unit taken by the worker ``owner``: Processing, one claim more, no back-off.

    Raises:
        ConflictError: The unit is not Pending.
    """
    if unit.status is not UnitStatus.PENDING:
        raise ConflictError(f"job is {unit.status}; only a pending job is claimed", job=_job(unit))
    return msgspec.structs.replace(
        unit,
        status=UnitStatus.PROCESSING,
        owner=owner,
        claims=unit.claims + 1,
        updated_at=now,
        retry_after=0.0,
    )


def complete(unit: WorkUnit, *, staged: str, frames: int, episodes: int, now: float) -> WorkUnit:
    """A Processing unit converted into the staged episode(s) at ``staged``: Complete, no error.

    Raises:
        ConflictError: The unit is not Processing (e.g. it was cancelled).
    """
    _processing(unit, "completed")
    return msgspec.structs.replace(
        unit,
        status=UnitStatus.COMPLETE,
        staged=staged,
        frames=frames,
        episodes=episodes,
        error=None,
        error_kind=None,
        updated_at=now,
    )


def fail(
    unit: WorkUnit, *, error: str, kind: str, transient: bool, retry_after: float, now: float
) -> WorkUnit:
    """A Processing unit whose conversion failed (seen by its worker): one attempt more; Pending
    again after ``retry_after`` seconds while the fault is ``transient`` and attempts remain, else
    Dead (its owner kept: the pod that found it so).

    Raises:
        ConflictError: The unit is not Processing.
    """
    _processing(unit, "failed")
    attempts = unit.attempts + 1
    if transient and attempts < unit.max_attempts:
        return msgspec.structs.replace(
            unit,
            status=UnitStatus.PENDING,
            owner=None,
            attempts=attempts,
            error=error,
            error_kind=kind,
            retry_after=retry_after,
            updated_at=now,
        )
    return msgspec.structs.replace(
        unit, status=UnitStatus.DEAD, attempts=attempts, error=error, error_kind=kind, updated_at=now
    )


def stall(unit: WorkUnit, *, reason: str, now: float) -> WorkUnit:
    """A Processing unit whose conversion stopped making progress (seen by a reaper): a failed
    attempt, Pending again without an owner, or Dead once its attempts are used up.

    Raises:
        ConflictError: The unit is not Processing.
    """
    _processing(unit, "stalled")
    attempts = unit.attempts + 1
    status = UnitStatus.DEAD if attempts >= unit.max_attempts else UnitStatus.PENDING
    return msgspec.structs.replace(
        unit,
        status=status,
        owner=None,
        attempts=attempts,
        error=reason,
        error_kind=StalledError.__name__,
        updated_at=now,
    )


def lose(unit: WorkUnit, *, reason: str, max_lost: int, now: float) -> WorkUnit:
    """A Processing unit whose worker is gone: one loss more, Pending again without an owner, or
    Dead after ``max_lost`` losses (the reason then says how many).

    Raises:
        ConflictError: The unit is not Processing.
    """
    _processing(unit, "lost")
    lost = unit.lost + 1
    dead = lost >= max_lost
    return msgspec.structs.replace(
        unit,
        status=UnitStatus.DEAD if dead else UnitStatus.PENDING,
        owner=None,
        lost=lost,
        error=f"{reason} ({lost} times)" if dead else reason,
        error_kind="WorkerLost",
        updated_at=now,
    )


def release(unit: WorkUnit, *, now: float, reason: str | None = None) -> WorkUnit:
    """A Processing unit given back to the queue by choice: Pending without an owner, counting
    neither as an attempt nor as a loss. ``reason`` (an operator's release) is recorded as its
    error, of kind ``Released``; without it (a pod giving back what it had claimed) the last
    error stays.

    Raises:
        ConflictError: The unit is not Processing.
    """
    _processing(unit, "released")
    if reason is None:
        return msgspec.structs.replace(unit, status=UnitStatus.PENDING, owner=None, updated_at=now)
    return msgspec.structs.replace(
        unit, status=UnitStatus.PENDING, owner=None, error=reason, error_kind="Released", updated_at=now
    )


def cancel(unit: WorkUnit, *, now: float) -> WorkUnit:
    """A unit that has not finished, cancelled (a running one's result is then discarded).

    Raises:
        ConflictError: It already finished.
    """
    if unit.status.terminal:
        raise ConflictError(f"job is already {unit.status}", job=_job(unit))
    return msgspec.structs.replace(unit, status=UnitStatus.CANCELLED, updated_at=now)


def retry(unit: WorkUnit, *, now: float) -> WorkUnit:
    """A Dead, Failed or Cancelled unit queued again: Pending, its attempts, losses and error reset.

    Raises:
        ConflictError: It is not Dead, Failed or Cancelled.
    """
    if unit.status not in _RETRIED:
        raise ConflictError(
            f"job is {unit.status}; only dead, failed or cancelled jobs are retried", job=_job(unit)
        )
    return msgspec.structs.replace(
        unit,
        status=UnitStatus.PENDING,
        attempts=0,
        lost=0,
        owner=None,
        error=None,
        error_kind=None,
        updated_at=now,
        retry_after=0.0,
    )


# --- batches ---------------------------------------------------------------------------------


def _phase(status: BatchStatus, expected: BatchPhase, *, batch: str, verb: str) -> None:
    if status.phase is not expected:
        raise ConflictError(f"batch is {status.phase}; only a {expected} batch is {verb}", batch=batch)


def discover(status: BatchStatus, *, batch: str, now: float) -> BatchStatus:
    """A Pending batch whose sources the scanner starts to expand: Discovering.

    Raises:
        ConflictError: It is not Pending.
    """
    _phase(status, BatchPhase.PENDING, batch=batch, verb="discovered")
    return msgspec.structs.replace(status, phase=BatchPhase.DISCOVERING, updated_at=now)


def run(status: BatchStatus, *, batch: str, units_total: int, now: float) -> BatchStatus:
    """A Discovering batch whose ``units_total`` units exist: Running.

    Raises:
        ConflictError: It is not Discovering.
    """
    _phase(status, BatchPhase.DISCOVERING, batch=batch, verb="started")
    return msgspec.structs.replace(status, phase=BatchPhase.RUNNING, units_total=units_total, updated_at=now)


def suspend(status: BatchStatus, *, batch: str, now: float) -> BatchStatus:
    """A Running batch whose jobs are no longer claimed: Suspended.

    Raises:
        ConflictError: It is not Running.
    """
    _phase(status, BatchPhase.RUNNING, batch=batch, verb="suspended")
    return msgspec.structs.replace(status, phase=BatchPhase.SUSPENDED, updated_at=now)


def resume(status: BatchStatus, *, batch: str, now: float) -> BatchStatus:
    """A Suspended batch whose jobs are claimed again: Running.

    Raises:
        ConflictError: It is not Suspended.
    """
    _phase(status, BatchPhase.SUSPENDED, batch=batch, verb="resumed")
    return msgspec.structs.replace(status, phase=BatchPhase.RUNNING, updated_at=now)


def close_watch(status: BatchStatus, *, batch: str, now: float) -> BatchStatus:
    """A watched batch that stops watching its sources (it completes once the rest is merged).

    Raises:
        ConflictError: It is not a watched batch still open.
    """
    if not status.watching:
        raise ConflictError(
            f"batch is {status.phase} and not watching; only a watched batch is closed", batch=batch
        )
    return msgspec.structs.replace(status, watching=False, updated_at=now)


def start_merge(status: BatchStatus, *, batch: str, units: Sequence[WorkUnit], now: float) -> BatchStatus:
    """A Running batch whose ``units`` have all finished: Merging, with their counts.

    Raises:
        ConflictError: It is not Running.
    """
    _phase(status, BatchPhase.RUNNING, batch=batch, verb="merged")
    statuses = [u.status for u in units]
    return msgspec.structs.replace(
        status,
        phase=BatchPhase.MERGING,
        units_total=len(units),
        units_complete=statuses.count(UnitStatus.COMPLETE),
        units_dead=statuses.count(UnitStatus.DEAD),
        units_cancelled=statuses.count(UnitStatus.CANCELLED),
        updated_at=now,
    )


def finish_merge(
    status: BatchStatus, *, batch: str, episodes: int, frames: int, dataset_episodes: int, now: float
) -> BatchStatus:
    """A Merging batch whose ``episodes`` (``frames``) are in its dataset, which now has
    ``dataset_episodes``: Complete.

    Raises:
        ConflictError: It is not Merging.
    """
    _phase(status, BatchPhase.MERGING, batch=batch, verb="completed")
    return msgspec.structs.replace(
        status,
        phase=BatchPhase.COMPLETE,
        episodes=episodes,
        frames=frames,
        dataset_episodes=dataset_episodes,
        merge_failed=False,
        finished_at=now,
        updated_at=now,
    )


def fail_merge(status: BatchStatus, *, batch: str, error: str, retryable: bool, now: float) -> BatchStatus:
    """A Merging batch that failed with ``error``: Failed; ``retryable`` (the merge itself failed,
    its staged episodes are kept) lets :func:`retry_merge` merge it again.

    Raises:
        ConflictError: It is not Merging.
    """
    _phase(status, BatchPhase.MERGING, batch=batch, verb="failed")
    return msgspec.structs.replace(
        status,
        phase=BatchPhase.FAILED,
        error=error,
        merge_failed=retryable,
        finished_at=now,
        updated_at=now,
    )


def fail_publish(status: BatchStatus, *, error: str, now: float) -> BatchStatus:
    """A watched batch whose publish failed with ``error``: Failed, no longer watching, its staged
    episodes kept for :func:`retry_merge`."""
    return msgspec.structs.replace(
        status,
        phase=BatchPhase.FAILED,
        watching=False,
        merge_failed=True,
        error=error,
        finished_at=now,
        updated_at=now,
    )


def cancel_batch(status: BatchStatus, *, batch: str, now: float) -> BatchStatus:
    """A batch that has neither finished nor started merging, cancelled: nothing is merged.

    Raises:
        ConflictError: It finished already or is merging.
    """
    if status.phase.terminal:
        raise ConflictError(f"batch is already {status.phase}", batch=batch)
    if status.phase is BatchPhase.MERGING:
        raise ConflictError("batch is merging its episodes into the dataset; too late to cancel", batch=batch)
    return msgspec.structs.replace(status, phase=BatchPhase.CANCELLED, finished_at=now, updated_at=now)


def retry_merge(status: BatchStatus, *, batch: str, now: float) -> BatchStatus:
    """A batch whose merge failed, merging again: Merging, its error and finish cleared.

    Raises:
        ConflictError: Its merge did not fail.
    """
    if not status.merge_failed:
        raise ConflictError(
            f"batch is {status.phase}; only a batch whose merge failed can merge again", batch=batch
        )
    return msgspec.structs.replace(
        status, phase=BatchPhase.MERGING, merge_failed=False, error=None, finished_at=None, updated_at=now
    )


# --- merges ----------------------------------------------------------------------------------


def extend_merge(state: MergeState, *, units: Sequence[str]) -> MergeState:
    """A merge (a watched batch's) whose record takes ``units`` more, after those it has."""
    return msgspec.structs.replace(state, units=[*state.units, *units])


def record_published(state: MergeState, *, published: int) -> MergeState:
    """A merge that has published its first ``published`` units."""
    return msgspec.structs.replace(state, published=published)
