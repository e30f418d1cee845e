"""A batch's lifecycle on real stores: priority order of claims, suspend/resume, delete, TTL collection.

Recordings are real, pods run in threads, and the datasets are read back frame by frame.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pytest
from tests.roboflow_distributed._batch_helpers import (
    FAST,
    PodThread,
    config_text,
    recordings,
    store,
    wait_finished,
)
from tests.roboflow_pipeline.test_convert import verify_dataset

from roboflow_core import CoordinationError
from roboflow_distributed import keys, transitions
from roboflow_distributed.batches import get_batch, list_batches, list_units, submit_batch, write_status
from roboflow_distributed.finalizer import Finalizer
from roboflow_distributed.lifecycle import (
    collect_expired,
    delete_batch,
    delete_unit,
    resume_batch,
    suspend_batch,
)
from roboflow_distributed.queue import FAIR_EVERY
from roboflow_distributed.reaper import Reaper
from roboflow_distributed.records import BatchPhase, UnitStatus, WorkUnit, encode
from roboflow_distributed.scanner import Scanner
from roboflow_distributed.store import Compare, Entry, Store
from roboflow_distributed.worker import Shutdown, Worker

__all__ = ["store"]


def _submit(store: Store, tmp_path: Path, sources: Sequence[str], out: str, **kw: object) -> str:
    return submit_batch(store, list(sources), config_text(), str(tmp_path / out), **kw).id  # type: ignore[arg-type]


def _queue(store: Store, batch: str, n: int) -> None:
    """``n`` pending units in a running batch, as discovery leaves them (claims need no files)."""
    for i in range(n):
        unit = WorkUnit(id=f"u{i:03d}", batch=batch, source=f"/r/{i}.mcap", size=1, config_hash="c", seq=i)
        ukey = keys.unit(batch, unit.id)
        assert store.txn([Compare(ukey, 0)], {ukey: encode(unit), keys.pending(batch, unit.id): b""})
    status = get_batch(store, batch).status
    found = transitions.discover(status.record, batch=batch, now=time.time())
    discovering = write_status(store, batch, status, found)
    assert discovering is not None
    running = transitions.run(discovering.record, batch=batch, units_total=n, now=time.time())
    assert write_status(store, batch, discovering, running) is not None


def test_higher_priority_is_claimed_first_and_lower_ones_do_not_starve(store: Store, tmp_path: Path) -> None:
    rec = recordings(tmp_path / "in", 1)[0]
    low = _submit(store, tmp_path, [str(rec.path)], "low")  # older, so first without priorities
    high = _submit(store, tmp_path, [str(rec.path)], "high", priority=5)
    held = _submit(store, tmp_path, [str(rec.path)], "held", priority=9)
    for batch in (low, high, held):
        _queue(store, batch, 40)  # more than claimed: the higher one never runs dry
    suspend_batch(store, held)
    worker = Worker(store, "w", FAST, Shutdown(1.0))
    random.seed(7)
    claimed = []
    for _ in range(40):
        unit = worker.claim()
        assert unit is not None and unit.record.owner == "w"
        claimed.append(unit.record.batch)
    assert held not in claimed, "a suspended batch's jobs are never claimed"
    by_priority = [b for i, b in enumerate(claimed, 1) if i % FAIR_EVERY]
    assert set(by_priority) == {high}, "every claim but the fair ones takes the higher priority"
    assert claimed.count(low) >= 1, "the lower priority still gets claims"
    assert claimed.count(low) <= 40 // FAIR_EVERY
    assert len({u.record.id for u in list_units(store, high, UnitStatus.PROCESSING)}) == claimed.count(high)

    resume_batch(store, held)
    assert worker.claim().record.batch == held  # type: ignore[union-attr]


def test_suspend_stops_claims_release_gives_running_jobs_back_and_resume_finishes(
    store: Store, tmp_path: Path
) -> None:
    recs = recordings(tmp_path / "in", 3, base=0.3)
    batch = _submit(store, tmp_path, [str(r.path) for r in recs], "ds")
    with pytest.raises(CoordinationError, match="only a running batch is suspended"):
        suspend_batch(store, batch)
    Scanner(store, "s", FAST).tick()
    running = Worker(store, "gone", FAST, Shutdown(1.0)).claim()  # a worker mid-job
    assert running is not None
    status, released = suspend_batch(store, batch, release=True)
    assert status.phase is BatchPhase.SUSPENDED and released == 1
    back = list_units(store, batch)
    assert [u.record.status for u in back] == [UnitStatus.PENDING] * 3
    again = next(u.record for u in back if u.record.id == running.record.id)
    assert again.owner is None and again.attempts == 0 and again.lost == 0 and again.error_kind == "Released"

    pod = PodThread(store, ["worker", "reaper", "finalizer"], "p", exit_when_idle=False).start()
    try:
        time.sleep(1.0)  # many poll intervals: nothing of a suspended batch is claimed or merged
        assert {u.record.status for u in list_units(store, batch)} == {UnitStatus.PENDING}
        assert get_batch(store, batch).status.record.phase is BatchPhase.SUSPENDED
        with pytest.raises(CoordinationError, match="only a suspended batch is resumed"):
            resume_batch(store, _other(store, tmp_path))
        assert resume_batch(store, batch).phase is BatchPhase.RUNNING
        assert wait_finished(store, batch).phase is BatchPhase.COMPLETE
    finally:
        pod.stop()
    verify_dataset(tmp_path / "ds", recs)


def _other(store: Store, tmp_path: Path) -> str:
    """A batch that is not suspended (pending)."""
    return _submit(store, tmp_path, [str(recordings(tmp_path / "o", 1)[0].path)], "other")


class SpyStore:
    """A store that notes every key it returns (reads by the control roles)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url = inner.url
        self.read: list[str] = []

    def get(self, key: str) -> Entry | None:
        found = self.inner.get(key)
        self.read.extend([key] if found else [])
        return found

    def scan(self, prefix: str, *, limit: int | None = None) -> list[Entry]:
        found = self.inner.scan(prefix, limit=limit)
        self.read.extend(e.key for e in found)
        return found

    def txn(
        self,
        compares: Sequence[Compare] = (),
        puts: Mapping[str, bytes] | None = None,
        deletes: Iterable[str] = (),
    ) -> bool:
        return self.inner.txn(compares, puts, deletes)

    def close(self) -> None:
        self.inner.close()


def _keys_of(store: Store, batch: str) -> list[str]:
    return [e.key for e in store.scan(keys.PREFIX) if batch in e.key]


def test_delete_and_ttl_collection_leave_no_record_and_control_roles_read_only_live_batches(
    store: Store, tmp_path: Path
) -> None:
    recs = recordings(tmp_path / "in", 2, base=0.3)
    short = _submit(store, tmp_path, [str(recs[0].path)], "short", ttl_seconds=4)
    kept = _submit(store, tmp_path, [str(recs[1].path)], "kept", labels={"robot": "so101"})
    pod = PodThread(store, ["all"], "p").start()
    try:
        assert wait_finished(store, short).phase is wait_finished(store, kept).phase is BatchPhase.COMPLETE
    finally:
        pod.stop()
    assert get_batch(store, kept).spec.labels == {"robot": "so101"}
    live = _submit(store, tmp_path, [str(recs[0].path)], "live")  # not yet discovered

    # the control roles read only the live batch (and the one expiry entry due next), not history
    spy = SpyStore(store)
    for role in (Scanner(spy, "p", FAST), Reaper(spy, "p", FAST), Finalizer(spy, "p", FAST)):  # p restarted
        spy.read.clear()
        role.tick()
        touched = {k for k in spy.read if short in k or kept in k}
        assert touched <= {k for k in spy.read if k.startswith(keys.EXPIRY)}, touched
        assert len(touched) <= 1
    assert live in " ".join(spy.read)

    finished = get_batch(store, short).status.record.finished_at
    assert finished is not None and time.time() < finished + 4, "the test was too slow to see it kept"
    assert collect_expired(store) == 0 and _keys_of(store, short)
    time.sleep(max(finished + 4.5 - time.time(), 0))  # its ttl runs out: the finalizer's sweep deletes it
    Finalizer(store, "p", FAST).tick()
    assert _keys_of(store, short) == []
    assert not list((tmp_path / "short.roboflow-staging").glob("**/*.parquet"))
    verify_dataset(tmp_path / "short", recs[:1])  # the dataset stays
    left = {b.spec.id: str(b.status.record.phase) for b in list_batches(store)}
    assert kept in left and live in left and short not in left, (left, short, kept, live)

    # by hand: a job of a finished batch, then the batch with its dataset
    job = list_units(store, kept)[0].record
    assert delete_unit(store, f"{kept}/{job.id}").id == job.id
    assert list_units(store, kept) == []
    with pytest.raises(CoordinationError, match="cancel it first"):
        delete_batch(store, live)
    pending = list_units(store, live)[0].record
    with pytest.raises(CoordinationError, match="only dead or cancelled jobs are deleted"):
        delete_unit(store, f"{live}/{pending.id}")
    delete_batch(store, kept, with_dataset=True)
    assert _keys_of(store, kept) == [] and not (tmp_path / "kept").exists()
    with pytest.raises(CoordinationError, match="no such batch"):
        delete_batch(store, kept)
    assert collect_expired(store) == 0, "the expiry entry of a deleted batch went with it"
