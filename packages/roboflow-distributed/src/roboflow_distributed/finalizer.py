"""The finalizer role: when every unit of a batch has finished, merge its staged episodes.

Running -> Merging is a compare-and-swap, and the merge itself runs under a lease on the output
dataset, so exactly one pod merges a batch at a time and two batches into one dataset never merge
at once. The merge is restartable: its record (``merge/{batch}``)
fixes the units (in source order) and the dataset's episode count before the merge, and counts the
units published so far. Units are published ``Settings.merge_group`` at a time (so the finalizer's
disk holds one group of staged episodes, not the batch); a finalizer that dies mid-group is
followed by one that either redoes the group (the dataset still has the old count: ``info.json``
is written last) or only records it (the new count is there).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from roboflow_core import CoordinationError, DatasetError, RoboflowError, StorageError, telemetry
from roboflow_core.workdirs import process_workdir
from roboflow_distributed import keys, metrics, transitions
from roboflow_distributed.batches import Batch, active_batches, finished_index, list_units, write_status
from roboflow_distributed.configs import fetch_config
from roboflow_distributed.lifecycle import collect_expired
from roboflow_distributed.liveness import Staleness
from roboflow_distributed.locks import Lease
from roboflow_distributed.records import (
    BatchPhase,
    BatchStatus,
    MergeState,
    UnitStatus,
    Versioned,
    WorkUnit,
    encode,
    read,
)
from roboflow_distributed.settings import Settings
from roboflow_distributed.staging import download_staged, remove_batch
from roboflow_distributed.store import ABSENT, Compare, Store
from roboflow_pipeline import Dataset
from roboflow_storage import Storage, display_url

__all__ = ["Finalizer", "Holding"]

log = logging.getLogger("roboflow.finalizer")
_FINALIZER = "roboflow finalizer"


class Finalizer:
    """Moves finished batches Running -> Merging -> Complete | Failed."""

    def __init__(self, store: Store, pod: str, settings: Settings) -> None:
        self.store = store
        self.pod = pod
        self.settings = settings
        self._leases = Staleness()  # since when each dataset's lease stood still (a dead holder's)
        self._unpublished = Staleness()  # since when each watched batch has converted, unpublished units

    def tick(self) -> bool:
        """One pass over the batches (and the deletion of those whose ttl ran out); whether a
        batch was merged or failed."""
        collect_expired(self.store)
        acted = False
        for batch in active_batches(self.store):
            phase = batch.status.record.phase
            if phase is BatchPhase.RUNNING and batch.status.record.watching:
                if self._publish_due(batch):
                    acted |= self._under_lease(batch, self.publish)
                continue
            if phase is BatchPhase.RUNNING:
                batch = self._close_running(batch) or batch
            if batch.status.record.phase is BatchPhase.MERGING:
                acted |= self._under_lease(batch, self.merge)
        return acted

    def _publish_due(self, batch: Batch) -> bool:
        """Whether a watched batch's converted recordings are to be published now: as many as
        ``publish_episodes`` wait, the first of them waited ``publish_interval`` (on this pod's
        clock), or a publish was interrupted."""
        bid = batch.spec.id
        saved = read(self.store, keys.merge(bid), MergeState)
        merged = set(saved.record.units) if saved is not None else set()
        if saved is not None and saved.record.published < len(saved.record.units):
            return True
        waiting = [u for u in list_units(self.store, bid, UnitStatus.COMPLETE) if u.record.id not in merged]
        if not waiting:
            self._unpublished.forget(lambda key: key == bid)
            return False
        waited = self._unpublished.age(bid, "waiting")
        return len(waiting) >= self.settings.publish_episodes or waited >= self.settings.publish_interval

    def publish(self, batch: Batch, holding: Holding) -> str:
        """Publish a watched batch's converted recordings into its dataset (a group of the merge
        that completes it, on the same path: the merge record grows by these units, published
        ``merge_group`` at a time), while ``holding`` the dataset's lease; the outcome."""
        state = self._merge_state(batch)
        units = {u.record.id: u.record for u in list_units(self.store, batch.spec.id)}
        try:
            self._merge_groups(batch, state, [units[uid] for uid in state.units], holding)
        except RoboflowError as err:
            if err.transient:
                raise
            holding.check()
            log.error("publishing %s failed (staged episodes kept for retry-merge): %s", batch.spec.id, err)
            status = read(self.store, keys.batch_status(batch.spec.id), BatchStatus)
            if status is not None:
                failed = transitions.fail_publish(
                    status.record, error=f"merge failed: {err}", now=time.time()
                )
                write_status(self.store, batch.spec.id, status, failed)
            return "failed"
        self._unpublished.forget(lambda key: key == batch.spec.id)
        return "published"

    def _close_running(self, batch: Batch) -> Batch | None:
        if self.store.scan(keys.pending_of(batch.spec.id), limit=1):
            return None  # work is still queued: no need to read every unit
        units = list_units(self.store, batch.spec.id)
        if any(not u.record.status.terminal for u in units):
            return None
        merging = transitions.start_merge(
            batch.status.record, batch=batch.spec.id, units=[u.record for u in units], now=time.time()
        )
        moved = write_status(self.store, batch.spec.id, batch.status, merging)
        return Batch(batch.spec, moved) if moved is not None else None

    def _under_lease(self, batch: Batch, action: Callable[[Batch, Holding], object]) -> bool:
        """Run a merge or a publish of ``batch`` under its dataset's lease; whether it ran."""
        lease = self.dataset_lease(batch.spec.output)
        if not lease.acquire():
            return False
        start, outcome = time.perf_counter(), "interrupted"
        try:
            attributes = {"roboflow.batch": batch.spec.id, "roboflow.pod": self.pod}
            with Holding(lease) as holding, telemetry.root_span("roboflow.merge", attributes) as span:
                outcome = str(action(batch, holding))
                span.set_attribute("roboflow.outcome", outcome)
        except (StorageError, CoordinationError) as err:
            log.warning("merge of %s interrupted, will retry: %s", batch.spec.id, err)
            return False
        finally:
            lease.release()
            metrics.MERGE_DURATION.record(time.perf_counter() - start, {"outcome": outcome})
        return True

    def dataset_lease(self, output: str) -> Lease:
        """The lease on the dataset at ``output`` under which a merge into it runs.

        One merge per dataset at a time: two batches into one dataset must not interleave, however
        their output URLs are spelled (the lease is named by the location's identity).
        """
        where = Storage.from_url(output).location.identity()
        dataset = hashlib.sha256(where.encode()).hexdigest()[:24]
        return Lease(
            self.store, f"dataset/{dataset}", self.pod, self.settings.lock_ttl, observer=self._leases
        )

    def merge(self, batch: Batch, holding: Holding) -> BatchPhase:
        """Merge the batch's complete units into its dataset and finish the batch, while
        ``holding`` the dataset's lease (checked before every write); the batch's phase."""
        spec = batch.spec
        state = self._merge_state(batch)
        units = {u.record.id: u.record for u in list_units(self.store, spec.id)}
        done = [units[uid] for uid in state.units]
        if not done:
            reasons = sorted({u.error or str(u.status) for u in units.values()})[:3]
            error = f"no recording was converted: {'; '.join(reasons)}"
            self._end(
                batch,
                lambda s: transitions.fail_merge(
                    s, batch=spec.id, error=error, retryable=False, now=time.time()
                ),
            )
            return BatchPhase.FAILED
        expected = state.base_episodes + sum(u.episodes for u in done)
        try:
            self._merge_groups(batch, state, done, holding)
        except RoboflowError as err:
            if err.transient:
                raise  # the next tick retries where this one stopped
            holding.check()  # a failure caused by losing the dataset to another writer is not final
            log.error("merge of %s failed (staged episodes kept for retry-merge): %s", spec.id, err)
            error = f"merge failed: {err}"
            self._end(
                batch,
                lambda s: transitions.fail_merge(
                    s, batch=spec.id, error=error, retryable=True, now=time.time()
                ),
            )
            return BatchPhase.FAILED
        self._end(
            batch,
            lambda s: transitions.finish_merge(
                s,
                batch=spec.id,
                episodes=expected - state.base_episodes,
                frames=sum(u.frames for u in done),
                dataset_episodes=expected,
                now=time.time(),
            ),
        )
        log.info(
            "batch %s complete: %d episodes into %s",
            spec.id,
            expected - state.base_episodes,
            display_url(spec.output),
        )
        return BatchPhase.COMPLETE

    def _merge_groups(self, batch: Batch, state: MergeState, done: list[WorkUnit], holding: Holding) -> None:
        """Publish the units ``merge_group`` at a time (bounded local disk), recording each group.

        Before each group the dataset must hold ``base + published`` episodes (then the group is
        merged) or ``base + published + group`` (a finalizer died after publishing it, before
        recording it: only the record is missing).
        """
        spec = batch.spec
        published = state.published
        while published < len(done):
            group = done[published : published + self.settings.merge_group]
            before = state.base_episodes + sum(u.episodes for u in done[:published])
            after = before + sum(u.episodes for u in group)
            found = Dataset(spec.output).episodes()
            if found == before:
                with telemetry.span("roboflow.merge.group", {"roboflow.episodes": after - before}):
                    self._publish(batch, group, holding)
                metrics.EPISODES_MERGED.add(after - before)
            elif found != after:
                raise DatasetError(
                    f"the dataset changed during the merge: it has {found} episodes, expected {before} "
                    f"(before this group) or {after} (after it)",
                    path=display_url(spec.output),
                )
            published += len(group)
            holding.check()
            state = self._record_published(spec.id, published)
            log.info("batch %s: %d/%d episodes merged", spec.id, published, len(done))

    def _record_published(self, batch_id: str, published: int) -> MergeState:
        key = keys.merge(batch_id)
        saved = read(self.store, key, MergeState)
        if saved is None:
            raise CoordinationError("the merge record vanished", batch=batch_id)
        state = transitions.record_published(saved.record, published=published)
        if not self.store.txn([Compare(key, saved.version)], {key: encode(state)}):
            raise CoordinationError("the merge record changed meanwhile", batch=batch_id)
        return state

    def _merge_state(self, batch: Batch) -> MergeState:
        key = keys.merge(batch.spec.id)
        saved = read(self.store, key, MergeState)
        complete = list_units(self.store, batch.spec.id, UnitStatus.COMPLETE)
        ordered = [u.record.id for u in sorted(complete, key=lambda u: (u.record.source, u.record.id))]
        if saved is not None:  # a watched batch published some already: the rest go after them
            known = set(saved.record.units)
            more = [uid for uid in ordered if uid not in known]
            if not more:
                return saved.record
            grown = transitions.extend_merge(saved.record, units=more)
            if not self.store.txn([Compare(key, saved.version)], {key: encode(grown)}):
                raise CoordinationError("the merge record changed meanwhile", batch=batch.spec.id)
            return grown
        state = MergeState(
            batch=batch.spec.id,
            units=ordered,
            base_episodes=Dataset(batch.spec.output).episodes(),
            started_at=time.time(),
        )
        if not self.store.txn([Compare(key, ABSENT)], {key: encode(state)}):
            raise CoordinationError("another finalizer started this merge", batch=batch.spec.id)
        return state

    def _publish(self, batch: Batch, units: list[WorkUnit], holding: Holding) -> None:
        spec = batch.spec
        config = fetch_config(self.store, spec.config_hash)
        staging = Storage.from_url(spec.staging)
        workdir = Path(tempfile.mkdtemp(prefix="merge-", dir=process_workdir()))
        try:
            staged = []
            for unit in units:
                if unit.staged is None:
                    raise CoordinationError("complete unit without a staged episode", unit=unit.id)
                staged.extend(download_staged(staging, unit.staged, workdir / unit.id))
            Dataset(spec.output).publish(
                staged,
                fmt="lerobot-v2.1" if spec.format == "lerobot-v2.1" else "lerobot-v3",
                robot_type=config.dataset.robot_type,
                fps=config.dataset.fps,
                chunks_size=spec.episodes_per_chunk,
                owner=f"{_FINALIZER} {self.pod}",
                # a lock left by an earlier holder of the dataset's lease (dead, or stopped and about
                # to notice it lost the lease) has a lower token and is taken over
                fencing=holding.lease.fencing,
                check=holding.check,
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _end(self, batch: Batch, finish: Callable[[BatchStatus], BatchStatus]) -> None:
        """Finish the batch: CAS from its Merging status to ``finish`` of it (a transition to
        Complete or Failed), and clean its staging and bookkeeping; a failed merge that can be
        retried keeps them, so that ``retry_merge`` can merge again."""
        bid = batch.spec.id
        current: Versioned[BatchStatus] | None = read(self.store, keys.batch_status(bid), BatchStatus)
        if current is None or current.record.phase is not BatchPhase.MERGING:
            return
        new = finish(current.record)
        status_key = keys.batch_status(bid)
        bookkeeping = [] if new.merge_failed else [keys.merge(bid)]
        index_puts, index_deletes = finished_index(self.store, bid, new)
        if not self.store.txn(
            [Compare(status_key, current.version)],
            {status_key: encode(new), **index_puts},
            [*bookkeeping, *index_deletes],
        ):
            raise CoordinationError("batch status changed during the merge", batch=bid)
        metrics.BATCHES.add(1, {"outcome": str(new.phase)})
        if new.merge_failed:
            return
        remove_batch(Storage.from_url(batch.spec.staging), bid)
        for entry in self.store.scan(keys.checkpoints_of(bid)):
            self.store.txn(deletes=[entry.key])


class Holding:
    """Renews ``lease`` in the background while the ``with`` body runs; :meth:`check` says
    whether it is still held.

    The lease counts as lost once a renewal finds it taken, or when no renewal has succeeded for
    a ``ttl`` on this process's own monotonic clock (:attr:`Lease.held`: a pod that was stopped or
    cut off from the store must assume another finalizer has it by then).
    """

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self._lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="lease-renew", daemon=True)

    def __enter__(self) -> Holding:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease.ttl / 3) and not self._lost:
            if not self.lease.held:  # stopped or cut off for a ttl: may be gone
                self._lost = True
                break
            try:
                if not self.lease.renew():
                    self._lost = True
                    log.error("lost the lease %s to another pod", self.lease.key)
            except CoordinationError as err:
                log.warning("lease renewal failed: %s", err)

    def check(self) -> None:
        """Raise unless the lease is still held.

        Raises:
            CoordinationError: The lease was taken by another pod or could not be renewed for a ttl.
        """
        if not self.lease.held:
            self._lost = True
        if self._lost:
            raise CoordinationError(
                f"lost the lease {self.lease.key} (taken over, or not renewed for "
                f"{self.lease.ttl:g} s); this merge writes nothing more"
            )
