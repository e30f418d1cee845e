"""Distributed conversion in one process: batches, units, reaper, finalizer, cancel, retry, shutdown.

Pods run in threads against a real SQLite store; every dataset is read back frame by frame.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

import msgspec
import pytest
from tests.roboflow_distributed._batch_helpers import (
    FAST,
    PodThread,
    claim_when_due,
    config_text,
    convert_units,
    corrupt,
    recordings,
    store,
    wait_finished,
)
from tests.roboflow_pipeline.test_convert import run_doctor, verify_dataset

from roboflow_core import ConfigError, CoordinationError
from roboflow_dataset.lerobot import ClosedSegment
from roboflow_distributed import keys
from roboflow_distributed.batches import (
    active_batches,
    cancel_batch,
    cancel_unit,
    get_batch,
    list_units,
    retry_unit,
    submit_batch,
)
from roboflow_distributed.finalizer import Finalizer, Holding
from roboflow_distributed.progress import UnitProgress
from roboflow_distributed.reaper import Reaper
from roboflow_distributed.records import BatchPhase, Checkpoint, Heartbeat, UnitStatus, encode, read
from roboflow_distributed.scanner import Scanner
from roboflow_distributed.store import Store
from roboflow_distributed.worker import Shutdown, Worker

__all__ = ["store"]


def test_batch_converts_every_recording_once_and_a_corrupt_one_ends_dead(
    store: Store, tmp_path: Path
) -> None:
    recs = recordings(tmp_path / "in", 5)
    bad = corrupt(recs[0].path, tmp_path / "in" / "rec_zzz_bad.mcap")
    output = tmp_path / "out" / "dataset"
    spec = submit_batch(store, [str(tmp_path / "in" / "*.mcap")], config_text(), str(output))
    pods = [PodThread(store, ["all"], "pod-a").start(), PodThread(store, ["worker"], "pod-b").start()]
    status = wait_finished(store, spec.id)
    for pod in pods:
        pod.stop()
    assert status.phase is BatchPhase.COMPLETE, status.error
    assert (status.units_total, status.units_complete, status.units_dead) == (6, 5, 1)
    assert status.episodes == 5 and status.dataset_episodes == 5
    dead = list_units(store, spec.id, UnitStatus.DEAD)
    assert len(dead) == 1 and dead[0].record.source == str(bad)
    assert "rec_zzz_bad.mcap" in (dead[0].record.error or "")
    assert dead[0].record.attempts == 1, "a corrupt input is not retried"
    verify_dataset(output, recs)
    run_doctor(output)
    assert not any(Path(spec.staging).rglob("*.json")), "staged episodes were left behind"
    assert store.scan(keys.PENDING) == []
    assert store.scan(keys.ACTIVE) == [], "a complete batch is still in the active index"
    assert sum(p.report.units_completed for p in pods if p.report) == 5


def test_the_same_recording_named_twice_is_one_unit(store: Store, tmp_path: Path) -> None:
    recs = recordings(tmp_path / "in", 2)
    sources = [str(recs[0].path), str(tmp_path / "in" / "*.mcap"), str(recs[1].path)]
    spec = submit_batch(store, sources, config_text(), str(tmp_path / "ds"))
    Scanner(store, "s", FAST).tick()
    units = list_units(store, spec.id)
    assert sorted(u.record.source for u in units) == sorted(str(r.path) for r in recs)
    assert [u.record.seq for u in units] == [0, 1]
    Scanner(store, "s", FAST).tick()  # discovery is idempotent
    assert len(list_units(store, spec.id)) == 2


def test_a_missing_config_fails_the_unit_instead_of_converting_with_defaults(
    store: Store, tmp_path: Path
) -> None:
    recs = recordings(tmp_path / "in", 1)
    spec = submit_batch(store, [str(recs[0].path)], config_text(), str(tmp_path / "ds"))
    store.txn(deletes=[keys.config(spec.config_hash)])
    pod = PodThread(store, ["all"], "p").start()
    status = wait_finished(store, spec.id)
    pod.stop()
    assert status.phase is BatchPhase.FAILED
    (unit,) = list_units(store, spec.id)
    assert unit.record.status is UnitStatus.DEAD
    assert f"config sha256:{spec.config_hash} is not in the store" in (unit.record.error or "")
    assert unit.record.error_kind == ConfigError.__name__
    assert not (tmp_path / "ds" / "meta" / "info.json").exists()


def test_submit_rejects_a_bad_config_before_storing_anything(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dataset"):
        submit_batch(store, ["x.mcap"], "[dataset]\nfps = 30\n", str(tmp_path / "ds"))
    assert store.scan(keys.PREFIX) == []


def test_reaper_requeues_units_of_lost_workers_and_claims_race_cleanly(store: Store, tmp_path: Path) -> None:
    recs = recordings(tmp_path / "in", 6, base=0.2)
    spec = submit_batch(store, [str(r.path) for r in recs], config_text(), str(tmp_path / "ds"))
    Scanner(store, "s", FAST).tick()
    # eight workers race for six units: every unit is claimed exactly once
    claimed: list[str] = []
    lock = threading.Lock()

    def grab(i: int) -> None:
        worker = Worker(store, f"ghost-{i}", FAST, Shutdown(1.0))
        while (unit := worker.claim()) is not None:
            with lock:
                claimed.append(unit.record.id)

    threads = [threading.Thread(target=grab, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(u.record.id for u in list_units(store, spec.id))
    assert store.scan(keys.PENDING) == []
    # the ghosts never heartbeat: the reaper gives every unit back
    Reaper(store, "r", FAST).tick()
    units = list_units(store, spec.id)
    assert all(u.record.status is UnitStatus.PENDING and u.record.lost == 1 for u in units)
    assert len(store.scan(keys.PENDING)) == 6
    pod = PodThread(store, ["all"], "p").start()
    status = wait_finished(store, spec.id)
    pod.stop()
    assert status.phase is BatchPhase.COMPLETE
    verify_dataset(tmp_path / "ds", recs)


class _ReplyLost:
    """The real store, but the reply of its next transaction is lost after it committed (a
    connection that breaks at the wrong moment)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.armed = True

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def txn(self, *args: object, **kwargs: object) -> bool:
        done: bool = self._store.txn(*args, **kwargs)  # type: ignore[arg-type]
        if self.armed:
            self.armed = False
            raise CoordinationError("connection lost")
        return done


def test_a_claim_whose_reply_was_lost_is_still_taken(store: Store, tmp_path: Path) -> None:
    recs = recordings(tmp_path / "in", 1, base=0.2)
    spec = submit_batch(store, [str(recs[0].path)], config_text(), str(tmp_path / "ds"))
    Scanner(store, "s", FAST).tick()
    flaky = _ReplyLost(store)
    unit = Worker(flaky, "w", FAST, Shutdown(1.0)).claim()  # type: ignore[arg-type]
    assert not flaky.armed, "the claim's transaction did not fail"
    assert unit is not None, "a committed claim was dropped: its unit would stay Processing forever"
    (stored,) = list_units(store, spec.id)
    assert (stored.record.status, stored.record.owner) == (UnitStatus.PROCESSING, "w")
    assert store.scan(keys.PENDING) == []


def test_a_unit_lost_too_often_is_dead(store: Store, tmp_path: Path) -> None:
    recs = recordings(tmp_path / "in", 1, base=0.2)
    spec = submit_batch(store, [str(recs[0].path)], config_text(), str(tmp_path / "ds"))
    Scanner(store, "s", FAST).tick()
    strict = dataclasses.replace(FAST, max_lost=2)
    for _ in range(2):
        assert Worker(store, "ghost", strict, Shutdown(1.0)).claim() is not None
        Reaper(store, "r", strict).tick()
    (unit,) = list_units(store, spec.id)
    assert unit.record.status is UnitStatus.DEAD
    assert "ghost stopped heartbeating (2 times)" in (unit.record.error or "")


def test_merge_is_restartable_group_by_group_and_never_duplicates_episodes(
    store: Store, tmp_path: Path
) -> None:
    recs = recordings(tmp_path / "in", 5, base=0.2)
    output = tmp_path / "ds"
    spec = submit_batch(store, [str(r.path) for r in recs], config_text(), str(output))
    convert_units(store, spec.id, lambda statuses: statuses.count(UnitStatus.COMPLETE) == 5)
    settings = dataclasses.replace(FAST, merge_group=2)
    finalizer = Finalizer(store, "f", settings)
    finalizer._close_running(get_batch(store, spec.id))
    batch = get_batch(store, spec.id)
    assert batch.status.record.phase is BatchPhase.MERGING
    # a finalizer dies after publishing its first group of two, before recording it
    state = finalizer._merge_state(batch)
    done = {u.record.id: u.record for u in list_units(store, spec.id)}
    lease = finalizer.dataset_lease(spec.output)
    assert lease.acquire()
    with Holding(lease) as holding:
        finalizer._publish(batch, [done[uid] for uid in state.units[:2]], holding)
    lease.release()
    assert state.base_episodes == 0 and state.published == 0
    # the next finalizer records that group, merges the other three in two groups, completes
    assert Finalizer(store, "f2", settings).tick()
    status = get_batch(store, spec.id).status.record
    assert status.phase is BatchPhase.COMPLETE and status.dataset_episodes == 5, status.error
    verify_dataset(output, recs)
    run_doctor(output)
    assert store.get(keys.merge(spec.id)) is None


def test_roles_look_only_at_unfinished_batches(store: Store, tmp_path: Path) -> None:
    recs = recordings(tmp_path / "in", 1, base=0.2)
    old = submit_batch(store, [str(recs[0].path)], config_text(), str(tmp_path / "old"))
    Scanner(store, "s", FAST).tick()
    cancel_batch(store, old.id)
    # the roles go by the active index, which the cancel emptied in the same transaction
    new = submit_batch(store, [str(recs[0].path)], config_text(), str(tmp_path / "new"))
    assert [b.spec.id for b in active_batches(store)] == [new.id]
    assert Scanner(store, "s", FAST).tick()
    assert get_batch(store, new.id).status.record.phase is BatchPhase.RUNNING
    assert get_batch(store, old.id).status.record.phase is BatchPhase.CANCELLED
    pod = PodThread(store, ["all"], "p").start()
    status = wait_finished(store, new.id)
    pod.thread.join(30)  # with nothing active left the pod stops by itself
    assert not pod.thread.is_alive(), "the pod did not notice that no batch is active"
    assert status.phase is BatchPhase.COMPLETE and active_batches(store) == []
    assert pod.report is not None and pod.report.units_completed == 1
    verify_dataset(tmp_path / "new", recs)


def _beat(store: Store, pod: str) -> None:
    now = time.time()
    beat = Heartbeat(pod=pod, roles=["worker"], at=now, started_at=now)
    store.txn(puts={keys.heartbeat(pod): encode(beat)})


def test_a_worker_claims_its_next_unit_ahead_only_while_every_worker_has_one(
    store: Store, tmp_path: Path
) -> None:
    recs = recordings(tmp_path / "in", 4, base=0.2)
    spec = submit_batch(store, [str(r.path) for r in recs], config_text(), str(tmp_path / "ds"))
    Scanner(store, "s", FAST).tick()
    _beat(store, "w")
    worker = Worker(store, "w", FAST, Shutdown(1.0))
    assert worker.tick()  # converts one unit and has claimed the next meanwhile
    status = [(u.record.status, u.record.owner) for u in list_units(store, spec.id)]
    assert status.count((UnitStatus.COMPLETE, "w")) == 1
    assert status.count((UnitStatus.PROCESSING, "w")) == 1
    assert len(store.scan(keys.PENDING)) == 2
    worker.release_reserved()  # shutdown: the reserved unit goes back to the queue
    assert len(store.scan(keys.PENDING)) == 3
    assert len(list_units(store, spec.id, UnitStatus.PENDING)) == 3
    for pod in ("x", "y"):  # three workers, three queued units: nobody claims ahead
        _beat(store, pod)
    assert worker.tick()
    assert len(list_units(store, spec.id, UnitStatus.PROCESSING)) == 0
    assert len(store.scan(keys.PENDING)) == 2
    pod = PodThread(store, ["all"], "p").start()
    finished = wait_finished(store, spec.id)
    pod.stop()
    assert finished.phase is BatchPhase.COMPLETE and finished.dataset_episodes == 4
    verify_dataset(tmp_path / "ds", recs)


def test_cancel_and_retry(store: Store, tmp_path: Path) -> None:
    recs = recordings(tmp_path / "in", 2, base=0.2)
    spec = submit_batch(store, [str(r.path) for r in recs], config_text(), str(tmp_path / "ds"))
    Scanner(store, "s", FAST).tick()
    first, _ = list_units(store, spec.id)
    with pytest.raises(CoordinationError, match="only dead, failed or cancelled"):
        retry_unit(store, f"{spec.id}/{first.record.id}")
    cancel_unit(store, first.record.id)
    assert len(store.scan(keys.PENDING)) == 1
    retried = retry_unit(store, first.record.id)
    assert retried.status is UnitStatus.PENDING and len(store.scan(keys.PENDING)) == 2
    assert [b.spec.id for b in active_batches(store)] == [spec.id]
    status = cancel_batch(store, spec.id)
    assert status.phase is BatchPhase.CANCELLED
    assert active_batches(store) == [], "a cancelled batch left the active index"
    assert store.scan(keys.PENDING) == []
    assert {u.record.status for u in list_units(store, spec.id)} == {UnitStatus.CANCELLED}
    with pytest.raises(CoordinationError, match="already cancelled"):
        cancel_batch(store, spec.id)


def test_shutdown_gives_a_running_unit_back_and_a_restart_resumes_its_staged_episode(
    store: Store, tmp_path: Path
) -> None:
    recs = recordings(tmp_path / "in", 1, base=2.0)
    spec = submit_batch(store, [str(recs[0].path)], config_text(), str(tmp_path / "ds"))
    Scanner(store, "s", FAST).tick()
    shutdown = Shutdown(0.0)
    worker = Worker(store, "w", FAST, shutdown)
    unit = worker.claim()
    assert unit is not None
    shutdown.request()  # deadline already passed: the first progress callback gives the unit back
    worker.process(unit)
    (back,) = list_units(store, spec.id)
    assert (
        back.record.status is UnitStatus.PENDING and back.record.attempts == 0 and back.record.owner is None
    )
    assert len(store.scan(keys.PENDING)) == 1
    # a checkpoint naming a finished staged episode lets the next claim skip the conversion
    pod = PodThread(store, ["all"], "p").start()
    status = wait_finished(store, spec.id)
    pod.stop()
    assert status.phase is BatchPhase.COMPLETE
    verify_dataset(tmp_path / "ds", recs)


def test_checkpoints_are_written_while_converting(store: Store, tmp_path: Path) -> None:
    recs = recordings(tmp_path / "in", 1, base=1.0)
    spec = submit_batch(store, [str(recs[0].path)], config_text(), str(tmp_path / "ds"))
    Scanner(store, "s", FAST).tick()
    seen: list[Checkpoint] = []
    worker = Worker(store, "w", FAST, Shutdown(1.0))
    unit = worker.claim()
    assert unit is not None
    key = keys.checkpoint(spec.id, unit.record.id)
    original = store.txn

    def spy(compares=(), puts=None, deletes=()):  # type: ignore[no-untyped-def]
        if puts and key in puts:
            seen.append(msgspec.json.decode(puts[key], type=Checkpoint))
        return original(compares, puts, deletes)

    store.txn = spy  # type: ignore[method-assign]
    worker.process(unit)
    assert len(seen) >= 2
    assert seen[-1].staged is not None and seen[-1].frames_done == seen[-1].frames_total > 0
    assert [c.frames_done for c in seen] == sorted(c.frames_done for c in seen)
    assert read(store, key, Checkpoint) is None, "the checkpoint is removed once the unit is complete"


def test_a_unit_whose_worker_crashed_resumes_after_its_uploaded_segments(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    recs = recordings(tmp_path / "in", 1, base=3.0)  # 90 frames
    spec = submit_batch(store, [str(recs[0].path)], config_text(), str(tmp_path / "ds"))
    settings = dataclasses.replace(FAST, segment_frames=20)
    Scanner(store, "s", settings).tick()
    upload_segment = UnitProgress.segment

    def crash_after_two(self: UnitProgress, segment: ClosedSegment, episode_dir: Path) -> None:
        upload_segment(self, segment, episode_dir)
        if self.segments == 2:
            raise RuntimeError("worker crashed")

    monkeypatch.setattr(UnitProgress, "segment", crash_after_two)
    first = Worker(store, "w1", settings, Shutdown(1.0))
    unit = first.claim()
    assert unit is not None
    first.process(unit)
    (failed,) = list_units(store, spec.id)
    assert failed.record.status is UnitStatus.PENDING and failed.record.attempts == 1
    saved = read(store, keys.checkpoint(spec.id, unit.record.id), Checkpoint)
    assert saved is not None and saved.record.segments == 2 and saved.record.prefix is not None
    monkeypatch.setattr(UnitProgress, "segment", upload_segment)
    caplog.set_level(logging.INFO, logger="roboflow.worker")
    second = Worker(store, "w2", settings, Shutdown(1.0))
    assert failed.record.retry_after > 0  # the backoff after a transient error
    again = claim_when_due(second)
    second.process(again)
    assert "resuming after 2 segment(s), 40 frames" in caplog.text
    assert Finalizer(store, "f", settings).tick() or Finalizer(store, "f", settings).tick()
    status = get_batch(store, spec.id).status.record
    assert status.phase is BatchPhase.COMPLETE, status.error
    verify_dataset(tmp_path / "ds", recs)
    run_doctor(tmp_path / "ds")


def test_skill_marks_and_salvage_travel_with_the_batch(store: Store, tmp_path: Path) -> None:
    from roboflow_dataset.lerobot import read_dataset
    from roboflow_dataset.synth import write_recording

    # 230 KB frames: several 1 MiB chunks, so the first half of the file salvages some frames
    (tmp_path / "in").mkdir()
    big = write_recording(tmp_path / "in/rec_a.mcap", "mcap", duration_s=1.0, width=320, height=240, seed=2)
    write_recording(tmp_path / "in/rec_b.mcap", "mcap", duration_s=1.0, width=320, height=240, seed=3)
    cut = corrupt(big.path, tmp_path / "in" / "rec_zzz_cut.mcap")
    marks = [
        {"startPosition": 0.0, "endPosition": 0.5, "skillAtomic": "pick", "enSkillDetail": "Pick it"},
        {"startPosition": 0.5, "endPosition": 1.0, "skillAtomic": "place", "enSkillDetail": "Place it"},
    ]
    annotation = msgspec.json.encode({"taskName": "t", "marks": marks}).decode()
    output = tmp_path / "out" / "dataset"
    text = config_text() + "[source]\nsalvage = true\n"
    spec = submit_batch(store, [str(tmp_path / "in" / "*.mcap")], text, str(output), annotation=annotation)
    pods = [PodThread(store, ["all"], "pod-a").start()]
    status = wait_finished(store, spec.id)
    for pod in pods:
        pod.stop()
    assert status.phase is BatchPhase.COMPLETE, status.error
    assert (status.units_complete, status.episodes, status.dataset_episodes) == (3, 6, 6)
    ds = read_dataset(output)
    assert ds.tasks == ["pick: Pick it", "place: Place it"]
    lengths = ds.episodes["length"].tolist()
    assert [int(t) for t in ds.episodes["tasks"].map(lambda t: t[0] == "place: Place it")] == [0, 1] * 3
    assert sum(lengths) == len(ds.data) and all(n > 0 for n in lengths)
    assert lengths[4] + lengths[5] < lengths[0] + lengths[1], "the cut recording gave less than the whole"
    assert cut.name in {u.record.source.rsplit("/", 1)[-1] for u in list_units(store, spec.id)}
