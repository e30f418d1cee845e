"""The transitions of coordination records: each one's result fields, and illegal ones refused.

Real records (as discovery and submit make them), encoded and decoded as the store keeps them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import msgspec
import pytest

import roboflow_distributed
from roboflow_core import ConflictError
from roboflow_distributed import transitions as t
from roboflow_distributed.records import BatchPhase, BatchStatus, MergeState, UnitStatus, WorkUnit

NOW = 1_700_000_000.0


def _unit(**fields: object) -> WorkUnit:
    unit = WorkUnit(
        id="u1", batch="b1", source="s3://in/a.mcap", size=10, config_hash="c", seq=0, max_attempts=3
    )
    return msgspec.structs.replace(unit, **fields)  # a record as an earlier transition left it


def _claimed(**fields: object) -> WorkUnit:
    return t.claim(_unit(**fields), owner="pod-a", now=NOW - 10)


def _status(phase: BatchPhase, **fields: object) -> BatchStatus:
    return msgspec.structs.replace(BatchStatus(phase=phase, updated_at=NOW - 100), **fields)


def _round_trip(record: msgspec.Struct) -> None:
    """Every result is a valid record of its kind (as the store decodes it)."""
    assert msgspec.json.decode(msgspec.json.encode(record), type=type(record)) == record


# --- work units ------------------------------------------------------------------------------


def test_claim_takes_a_pending_unit_and_clears_its_backoff() -> None:
    new = t.claim(_unit(claims=2, retry_after=5.0, error="store down"), owner="pod-a", now=NOW)
    assert (new.status, new.owner, new.claims, new.retry_after, new.updated_at) == (
        UnitStatus.PROCESSING,
        "pod-a",
        3,
        0.0,
        NOW,
    )
    assert new.error == "store down", "the last error stays until the unit finishes"
    _round_trip(new)


@pytest.mark.parametrize("status", [s for s in UnitStatus if s is not UnitStatus.PENDING])
def test_only_a_pending_unit_is_claimed(status: UnitStatus) -> None:
    with pytest.raises(ConflictError, match=f"job is {status}; only a pending job is claimed") as info:
        t.claim(_unit(status=status), owner="pod-a", now=NOW)
    assert info.value.job == "b1/u1"


def test_complete_records_the_staged_episodes_and_clears_the_error() -> None:
    new = t.complete(
        _claimed(error="earlier", error_kind="StorageError"),
        staged="s3://st/b1/u1",
        frames=90,
        episodes=2,
        now=NOW,
    )
    assert (new.status, new.staged, new.frames, new.episodes) == (UnitStatus.COMPLETE, "s3://st/b1/u1", 90, 2)
    assert (new.error, new.error_kind, new.owner, new.updated_at) == (None, None, "pod-a", NOW)
    _round_trip(new)


@pytest.mark.parametrize("status", [UnitStatus.CANCELLED, UnitStatus.PENDING, UnitStatus.COMPLETE])
def test_only_a_processing_unit_is_completed(status: UnitStatus) -> None:
    with pytest.raises(ConflictError, match=f"job is {status}; only a processing job is completed"):
        t.complete(_unit(status=status), staged="s3://st/x", frames=1, episodes=1, now=NOW)


def test_a_transient_failure_queues_the_unit_again_after_its_backoff() -> None:
    new = t.fail(_claimed(), error="timeout", kind="StorageError", transient=True, retry_after=2.5, now=NOW)
    assert (new.status, new.owner, new.attempts, new.retry_after) == (UnitStatus.PENDING, None, 1, 2.5)
    assert (new.error, new.error_kind, new.updated_at) == ("timeout", "StorageError", NOW)


def test_a_failure_with_its_attempts_used_up_is_dead_and_keeps_its_owner() -> None:
    new = t.fail(
        _claimed(attempts=2), error="timeout", kind="StorageError", transient=True, retry_after=1.0, now=NOW
    )
    assert (new.status, new.owner, new.attempts, new.error) == (UnitStatus.DEAD, "pod-a", 3, "timeout")
    assert new.retry_after == 0.0


def test_a_permanent_failure_is_dead_at_once() -> None:
    new = t.fail(
        _claimed(), error="bad bag", kind="CorruptRecordingError", transient=False, retry_after=1.0, now=NOW
    )
    assert (new.status, new.attempts, new.error_kind) == (UnitStatus.DEAD, 1, "CorruptRecordingError")


def test_a_stalled_unit_is_a_failed_attempt_without_an_owner() -> None:
    again = t.stall(_claimed(), reason="no progress", now=NOW)
    assert (again.status, again.owner, again.attempts, again.lost) == (UnitStatus.PENDING, None, 1, 0)
    assert (again.error, again.error_kind, again.updated_at) == ("no progress", "StalledError", NOW)
    dead = t.stall(_claimed(attempts=2), reason="no progress", now=NOW)
    assert (dead.status, dead.owner, dead.attempts) == (UnitStatus.DEAD, None, 3)


def test_a_lost_unit_counts_its_losses_and_says_how_many_when_dead() -> None:
    again = t.lose(_claimed(), reason="worker pod-a stopped heartbeating", max_lost=2, now=NOW)
    assert (again.status, again.owner, again.lost, again.attempts) == (UnitStatus.PENDING, None, 1, 0)
    assert (again.error, again.error_kind) == ("worker pod-a stopped heartbeating", "WorkerLost")
    dead = t.lose(_claimed(lost=1), reason="worker pod-a stopped heartbeating", max_lost=2, now=NOW)
    assert (dead.status, dead.owner, dead.lost) == (UnitStatus.DEAD, None, 2)
    assert dead.error == "worker pod-a stopped heartbeating (2 times)"


def test_release_gives_a_unit_back_counting_neither_attempt_nor_loss() -> None:
    mine = t.release(_claimed(error="earlier", error_kind="StorageError", attempts=1), now=NOW)
    assert (mine.status, mine.owner, mine.attempts, mine.lost, mine.updated_at) == (
        UnitStatus.PENDING,
        None,
        1,
        0,
        NOW,
    )
    assert (mine.error, mine.error_kind) == ("earlier", "StorageError"), (
        "a pod's release keeps the last error"
    )
    operator = t.release(_claimed(), reason="released: its batch was suspended", now=NOW)
    assert (operator.error, operator.error_kind) == ("released: its batch was suspended", "Released")


@pytest.mark.parametrize("verb", ["fail", "stall", "lose", "release"])
def test_only_a_processing_unit_fails_stalls_is_lost_or_released(verb: str) -> None:
    pending = _unit()
    with pytest.raises(ConflictError, match="job is pending; only a processing job is"):
        if verb == "fail":
            t.fail(pending, error="x", kind="X", transient=True, retry_after=0.0, now=NOW)
        elif verb == "stall":
            t.stall(pending, reason="x", now=NOW)
        elif verb == "lose":
            t.lose(pending, reason="x", max_lost=3, now=NOW)
        else:
            t.release(pending, now=NOW)


@pytest.mark.parametrize("status", [UnitStatus.PENDING, UnitStatus.PROCESSING, UnitStatus.FAILED])
def test_an_unfinished_unit_is_cancelled(status: UnitStatus) -> None:
    new = t.cancel(_unit(status=status, owner="pod-a"), now=NOW)
    assert (new.status, new.owner, new.updated_at) == (UnitStatus.CANCELLED, "pod-a", NOW)


@pytest.mark.parametrize("status", [UnitStatus.COMPLETE, UnitStatus.DEAD, UnitStatus.CANCELLED])
def test_a_finished_unit_is_not_cancelled(status: UnitStatus) -> None:
    with pytest.raises(ConflictError, match=f"job is already {status}"):
        t.cancel(_unit(status=status), now=NOW)


@pytest.mark.parametrize("status", [UnitStatus.DEAD, UnitStatus.FAILED, UnitStatus.CANCELLED])
def test_retry_queues_a_finished_unit_afresh(status: UnitStatus) -> None:
    old = _unit(
        status=status, attempts=3, lost=2, owner="pod-a", error="bad", error_kind="X", retry_after=4.0
    )
    new = t.retry(old, now=NOW)
    assert (new.status, new.attempts, new.lost, new.owner) == (UnitStatus.PENDING, 0, 0, None)
    assert (new.error, new.error_kind, new.retry_after, new.updated_at) == (None, None, 0.0, NOW)
    assert new.claims == old.claims, "claims count every claim ever made"


@pytest.mark.parametrize("status", [UnitStatus.PENDING, UnitStatus.PROCESSING, UnitStatus.COMPLETE])
def test_only_dead_failed_or_cancelled_units_are_retried(status: UnitStatus) -> None:
    with pytest.raises(ConflictError, match="only dead, failed or cancelled jobs are retried"):
        t.retry(_unit(status=status), now=NOW)


# --- batches ---------------------------------------------------------------------------------


def test_a_batch_is_discovered_then_runs() -> None:
    found = t.discover(_status(BatchPhase.PENDING), batch="b1", now=NOW)
    assert (found.phase, found.updated_at) == (BatchPhase.DISCOVERING, NOW)
    running = t.run(found, batch="b1", units_total=7, now=NOW + 1)
    assert (running.phase, running.units_total, running.updated_at) == (BatchPhase.RUNNING, 7, NOW + 1)
    _round_trip(running)
    with pytest.raises(ConflictError, match="batch is running; only a pending batch is discovered") as info:
        t.discover(running, batch="b1", now=NOW)
    assert info.value.batch == "b1"
    with pytest.raises(ConflictError, match="batch is pending; only a discovering batch is started"):
        t.run(_status(BatchPhase.PENDING), batch="b1", units_total=1, now=NOW)


def test_suspend_and_resume_flip_running_and_suspended_only() -> None:
    held = t.suspend(_status(BatchPhase.RUNNING), batch="b1", now=NOW)
    assert (held.phase, held.updated_at) == (BatchPhase.SUSPENDED, NOW)
    assert t.resume(held, batch="b1", now=NOW + 1).phase is BatchPhase.RUNNING
    with pytest.raises(ConflictError, match="batch is suspended; only a running batch is suspended"):
        t.suspend(held, batch="b1", now=NOW)
    with pytest.raises(ConflictError, match="batch is pending; only a suspended batch is resumed"):
        t.resume(_status(BatchPhase.PENDING), batch="b1", now=NOW)


def test_close_watch_stops_watching_an_open_watched_batch_only() -> None:
    closed = t.close_watch(_status(BatchPhase.RUNNING, watching=True), batch="b1", now=NOW)
    assert (closed.phase, closed.watching, closed.updated_at) == (BatchPhase.RUNNING, False, NOW)
    with pytest.raises(
        ConflictError, match="batch is running and not watching; only a watched batch is closed"
    ):
        t.close_watch(closed, batch="b1", now=NOW)


def test_start_merge_counts_the_finished_units() -> None:
    units = [
        _unit(status=UnitStatus.COMPLETE),
        _unit(status=UnitStatus.COMPLETE),
        _unit(status=UnitStatus.DEAD),
        _unit(status=UnitStatus.CANCELLED),
    ]
    new = t.start_merge(_status(BatchPhase.RUNNING, units_total=3), batch="b1", units=units, now=NOW)
    assert (new.phase, new.units_total, new.units_complete, new.units_dead, new.units_cancelled) == (
        BatchPhase.MERGING,
        4,
        2,
        1,
        1,
    )
    assert new.updated_at == NOW
    with pytest.raises(ConflictError, match="batch is suspended; only a running batch is merged"):
        t.start_merge(_status(BatchPhase.SUSPENDED), batch="b1", units=units, now=NOW)


def test_finish_merge_completes_a_merging_batch() -> None:
    new = t.finish_merge(
        _status(BatchPhase.MERGING), batch="b1", episodes=4, frames=400, dataset_episodes=9, now=NOW
    )
    assert (new.phase, new.episodes, new.frames, new.dataset_episodes) == (BatchPhase.COMPLETE, 4, 400, 9)
    assert (new.merge_failed, new.finished_at, new.updated_at, new.error) == (False, NOW, NOW, None)
    with pytest.raises(ConflictError, match="batch is cancelled; only a merging batch is completed"):
        t.finish_merge(
            _status(BatchPhase.CANCELLED), batch="b1", episodes=1, frames=1, dataset_episodes=1, now=NOW
        )


@pytest.mark.parametrize("retryable", [True, False])
def test_fail_merge_fails_a_merging_batch(retryable: bool) -> None:
    new = t.fail_merge(
        _status(BatchPhase.MERGING), batch="b1", error="merge failed: x", retryable=retryable, now=NOW
    )
    assert (new.phase, new.error, new.merge_failed) == (BatchPhase.FAILED, "merge failed: x", retryable)
    assert (new.finished_at, new.updated_at) == (NOW, NOW)
    with pytest.raises(ConflictError, match="batch is running; only a merging batch is failed"):
        t.fail_merge(_status(BatchPhase.RUNNING), batch="b1", error="x", retryable=retryable, now=NOW)


def test_fail_publish_fails_a_watched_batch_keeping_its_staged_episodes() -> None:
    new = t.fail_publish(_status(BatchPhase.RUNNING, watching=True), error="merge failed: x", now=NOW)
    assert (new.phase, new.watching, new.merge_failed, new.error) == (
        BatchPhase.FAILED,
        False,
        True,
        "merge failed: x",
    )
    assert (new.finished_at, new.updated_at) == (NOW, NOW)


@pytest.mark.parametrize(
    "phase", [BatchPhase.PENDING, BatchPhase.DISCOVERING, BatchPhase.RUNNING, BatchPhase.SUSPENDED]
)
def test_cancel_batch_cancels_a_batch_not_merging_or_finished(phase: BatchPhase) -> None:
    new = t.cancel_batch(_status(phase), batch="b1", now=NOW)
    assert (new.phase, new.finished_at, new.updated_at) == (BatchPhase.CANCELLED, NOW, NOW)


def test_cancel_batch_refuses_a_merging_or_finished_batch() -> None:
    with pytest.raises(ConflictError, match="too late to cancel"):
        t.cancel_batch(_status(BatchPhase.MERGING), batch="b1", now=NOW)
    for phase in (BatchPhase.COMPLETE, BatchPhase.FAILED, BatchPhase.CANCELLED):
        with pytest.raises(ConflictError, match=f"batch is already {phase}"):
            t.cancel_batch(_status(phase), batch="b1", now=NOW)


def test_retry_merge_merges_a_failed_merge_again() -> None:
    failed = t.fail_merge(
        _status(BatchPhase.MERGING), batch="b1", error="merge failed: x", retryable=True, now=NOW
    )
    new = t.retry_merge(failed, batch="b1", now=NOW + 1)
    assert (new.phase, new.merge_failed, new.error, new.finished_at, new.updated_at) == (
        BatchPhase.MERGING,
        False,
        None,
        None,
        NOW + 1,
    )
    final = t.fail_merge(_status(BatchPhase.MERGING), batch="b1", error="nothing", retryable=False, now=NOW)
    with pytest.raises(
        ConflictError, match="batch is failed; only a batch whose merge failed can merge again"
    ):
        t.retry_merge(final, batch="b1", now=NOW)


# --- merges ----------------------------------------------------------------------------------


def test_a_merge_record_grows_and_counts_what_it_published() -> None:
    state = MergeState(batch="b1", units=["u1", "u2"], base_episodes=5, started_at=NOW)
    grown = t.extend_merge(state, units=["u3"])
    assert (grown.units, grown.base_episodes, grown.published) == (["u1", "u2", "u3"], 5, 0)
    assert state.units == ["u1", "u2"], "the record read is not changed"
    published = t.record_published(grown, published=2)
    assert (published.units, published.published) == (["u1", "u2", "u3"], 2)
    _round_trip(published)


# --- the one place ---------------------------------------------------------------------------


def test_no_module_but_transitions_replaces_a_record() -> None:
    """Records change only through :mod:`roboflow_distributed.transitions`: no ad-hoc
    ``msgspec.structs.replace`` elsewhere, and no untyped ``**changes: object`` anywhere."""
    package = Path(roboflow_distributed.__file__).parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "replace" and path.name != "transitions.py":
                inner = node.value
                if isinstance(inner, ast.Attribute) and inner.attr == "structs":
                    offenders.append(f"{path.name}:{node.lineno}: structs.replace")
            if isinstance(node, ast.FunctionDef) and node.args.kwarg is not None:
                annotation = node.args.kwarg.annotation
                if isinstance(annotation, ast.Name) and annotation.id == "object":
                    offenders.append(f"{path.name}:{node.lineno}: **{node.args.kwarg.arg}: object")
    assert package.joinpath("transitions.py").is_file()
    assert not offenders, f"records changed outside transitions.py: {offenders}"
