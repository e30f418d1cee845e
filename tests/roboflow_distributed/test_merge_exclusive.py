"""Merges into one dataset are exclusive: two batches publishing into it through different
spellings of its URL both land every episode exactly once, a finalizer that was stopped past its
lease writes nothing more, a retry cannot slip past a batch's switch to Merging, and a failed
merge keeps its staged episodes for ``batch retry-merge``."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from tests._servers import S3Bucket, moto_server, s3_bucket
from tests.roboflow_distributed._batch_helpers import (
    FAST,
    FAST_ENV,
    PodThread,
    config_text,
    convert_units,
    corrupt,
    recordings,
    wait_finished,
)
from tests.roboflow_pipeline.test_convert import make_config, verify_dataset
from tests.roboflow_pipeline.test_convert_s3 import download

from roboflow_cli.main import cli
from roboflow_core import CoordinationError, StorageError
from roboflow_dataset.synth import RecordingInfo, write_recording
from roboflow_distributed import keys
from roboflow_distributed.batches import get_batch, list_units, retry_merge, retry_unit, submit_batch
from roboflow_distributed.finalizer import Finalizer
from roboflow_distributed.records import BatchPhase, UnitStatus
from roboflow_distributed.store import SqliteStore, Store
from roboflow_pipeline import convert
from roboflow_storage import Storage
from roboflow_storage._location import parse_location

__all__ = ["moto_server", "s3_bucket"]

ROBOFLOW = str(Path(sys.executable).parent / "roboflow")
ALL_ROLES = ["scanner", "worker", "reaper", "finalizer"]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return SqliteStore(tmp_path / "state.db")


def _two_batches_into_one_dataset(
    store: Store, tmp_path: Path, outputs: tuple[str, str]
) -> list[RecordingInfo]:
    """Submit three recordings per output spelling, run two all-role pods; the recordings in the
    order the dataset must hold them (the batch merged first comes first)."""
    first = recordings(tmp_path / "a", 3, base=0.2)
    (tmp_path / "b").mkdir()
    second = [
        write_recording(tmp_path / "b" / f"rec_{i}.mcap", "mcap", duration_s=0.3, seed=100 + i)
        for i in range(3)
    ]
    specs = [
        submit_batch(store, [str(r.path) for r in recs], config_text(), output)
        for recs, output in zip((first, second), outputs, strict=True)
    ]
    pods = [PodThread(store, ALL_ROLES, f"pod-{i}").start() for i in range(2)]
    try:
        statuses = [wait_finished(store, spec.id) for spec in specs]
    finally:
        for pod in pods:
            pod.stop()
    assert [s.phase for s in statuses] == [BatchPhase.COMPLETE] * 2, [s.error for s in statuses]
    assert sorted(s.dataset_episodes for s in statuses) == [3, 6], "the merges did not serialise"
    return [*first, *second] if statuses[0].dataset_episodes == 3 else [*second, *first]


def test_two_spellings_of_a_local_dataset_keep_every_episode(store: Store, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "out")
    outputs = (str(tmp_path / "out" / "ds"), str(tmp_path / "link" / "." / "ds") + "/")
    ordered = _two_batches_into_one_dataset(store, tmp_path, outputs)
    verify_dataset(tmp_path / "out" / "ds", ordered)


@pytest.mark.object_store
def test_two_spellings_of_a_dataset_in_s3_keep_every_episode(
    store: Store, tmp_path: Path, s3_bucket: S3Bucket
) -> None:
    plain = s3_bucket.url("out/ds")
    path, query = plain.split("?")
    outputs = (plain, f"{path.replace('/out/', '/out/./')}/?{query}&virtual_hosted=false")
    ordered = _two_batches_into_one_dataset(store, tmp_path, outputs)
    verify_dataset(download(Storage.from_url(plain), tmp_path / "copy"), ordered)


def test_location_identity_ignores_spelling_but_not_the_store(tmp_path: Path) -> None:
    def identity(url: str) -> str:
        return parse_location(url).identity()

    s3 = "s3://b/out/ds"
    assert identity(s3) == identity("s3://b//out/./ds/") == identity(f"{s3}?region=x&virtual_hosted=false")
    assert identity(s3) != identity(f"{s3}?endpoint=http://127.0.0.1:9")
    assert identity(s3) != identity("s3://b/out/ds2") != identity("oss://b/out/ds")
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    assert identity(str(tmp_path / "alias" / "ds")) == identity(str(tmp_path / "real" / "ds" / "."))
    with pytest.raises(StorageError, match=r"'\.\.' is not allowed"):
        parse_location("s3://b/out/../ds")


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_a_finalizer_stopped_past_its_lease_writes_nothing_more(store: Store, tmp_path: Path) -> None:
    recs = recordings(tmp_path / "in", 4, base=0.3)
    output = tmp_path / "ds"
    spec = submit_batch(store, [str(r.path) for r in recs], config_text(), str(output))
    convert_units(store, spec.id, lambda statuses: statuses.count(UnitStatus.COMPLETE) == 4)
    # a finalizer process merging one episode at a time is stopped as soon as it writes the dataset
    env = {**os.environ, **FAST_ENV, "FINALIZER_MERGE_GROUP": "1"}
    command = [ROBOFLOW, "run", "--role", "finalizer", "--pod-id", "stopped", "--store", store.url]
    with (tmp_path / "stopped.log").open("wb") as log_file:
        stopped = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        lock = output / ".roboflow-lock"
        deadline = time.monotonic() + 60
        while not lock.exists():
            assert time.monotonic() < deadline and stopped.poll() is None, "the merge never started"
        stopped.send_signal(signal.SIGSTOP)
        assert get_batch(store, spec.id).status.record.phase is BatchPhase.MERGING
        following = Finalizer(store, "next", FAST)
        assert not following.tick(), "a live lease must not be taken over"
        time.sleep(FAST.lock_ttl + 1.0)  # its lease (and the dataset lock's) runs out meanwhile
        # the other finalizer saw the lease stand still for its ttl: it takes it and finishes
        assert following.tick()
        status = get_batch(store, spec.id).status.record
        assert status.phase is BatchPhase.COMPLETE, status.error
        verify_dataset(output, recs)
        before = _snapshot(output)
        stopped.send_signal(signal.SIGCONT)
        time.sleep(FAST.lock_ttl)  # it wakes up, notices the lost lease, and writes nothing
        assert stopped.poll() is None, "the stopped finalizer should carry on with other batches"
    finally:
        stopped.send_signal(signal.SIGCONT)
        stopped.terminate()
        stopped.wait(30)
    assert _snapshot(output) == before
    verify_dataset(output, recs)
    assert "lost the lease" in (tmp_path / "stopped.log").read_text()


class Interleaved:
    """A real store that runs ``before`` just before its first transaction: another pod's step
    landing between a caller's reads and its write."""

    def __init__(self, store: Store, before: Callable[[], object]) -> None:
        self.store = store
        self.before: Callable[[], object] | None = before

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def txn(self, *args: Any, **kwargs: Any) -> bool:
        if self.before is not None:
            before, self.before = self.before, None
            before()
        return self.store.txn(*args, **kwargs)


def test_a_retry_cannot_slip_in_after_the_batch_moved_to_merging(store: Store, tmp_path: Path) -> None:
    good = recordings(tmp_path / "in", 1, base=0.2)
    bad = corrupt(good[0].path, tmp_path / "in" / "bad.mcap")
    spec = submit_batch(store, [str(good[0].path), str(bad)], config_text(), str(tmp_path / "ds"))
    convert_units(store, spec.id, lambda found: sorted(found) == [UnitStatus.COMPLETE, UnitStatus.DEAD])
    dead = next(u for u in list_units(store, spec.id) if u.record.status is UnitStatus.DEAD)
    finalizer = Finalizer(store, "f", FAST)
    racing = Interleaved(store, lambda: finalizer._close_running(get_batch(store, spec.id)))
    with pytest.raises(CoordinationError, match="changed meanwhile"):
        retry_unit(racing, dead.record.id)  # type: ignore[arg-type]
    assert get_batch(store, spec.id).status.record.phase is BatchPhase.MERGING
    assert store.get(keys.pending(spec.id, dead.record.id)) is None, "queued into a merging batch"
    again = next(u for u in list_units(store, spec.id) if u.record.id == dead.record.id)
    assert again.record.status is UnitStatus.DEAD


def test_a_failed_merge_keeps_its_episodes_and_merges_again(store: Store, tmp_path: Path) -> None:
    recs = recordings(tmp_path / "in", 3, base=0.2)
    output = tmp_path / "ds"
    # a dataset at another frame rate is in the way: the merge fails
    other = write_recording(tmp_path / "other.mcap", "mcap", duration_s=0.3, seed=9)
    config = make_config(other.cameras)
    convert(
        [other.path],
        msgspec.structs.replace(config, dataset=msgspec.structs.replace(config.dataset, fps=15)),
        output,
    )
    spec = submit_batch(store, [str(r.path) for r in recs], config_text(), str(output))
    pod = PodThread(store, ALL_ROLES, "p").start()
    try:
        status = wait_finished(store, spec.id)
    finally:
        pod.stop()
    assert status.phase is BatchPhase.FAILED and status.merge_failed, status
    assert "merge failed" in (status.error or "") and "fps" in (status.error or "")
    assert all(u.record.staged for u in list_units(store, spec.id))
    assert Storage.from_url(spec.staging).list(spec.id), "staged episodes kept"
    shown = CliRunner().invoke(cli, ["batch", "get", spec.id, "--store", store.url])
    assert f"retry-merge {spec.id}" in shown.output
    # the operator moves the dataset out of the way and merges again
    output.rename(tmp_path / "moved")
    result = CliRunner().invoke(cli, ["batch", "retry-merge", spec.id, "--store", store.url])
    assert result.exit_code == 0, result.output
    assert "merging" in result.output
    pod = PodThread(store, ["finalizer"], "p2").start()
    try:
        status = wait_finished(store, spec.id)
    finally:
        pod.stop()
    assert status.phase is BatchPhase.COMPLETE and not status.merge_failed, status.error
    assert status.dataset_episodes == 3
    verify_dataset(output, recs)
    with pytest.raises(CoordinationError, match="only a batch whose merge failed"):
        retry_merge(store, spec.id)
