"""Watched sources (``submit --watch``): recordings copied in waves into a local directory or an S3
prefix (moto) are added once they are stable, and the dataset is published as it grows, always
complete and loadable; ``batch close`` completes it (real pods, store, recordings and lerobot-doctor)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests._servers import S3Bucket, moto_server, s3_bucket
from tests.roboflow_distributed._batch_helpers import (
    FAST,
    FAST_ENV,
    PodThread,
    config_text,
    recordings,
    wait_finished,
    wait_for,
)
from tests.roboflow_pipeline.test_convert import run_doctor, verify_dataset

from roboflow_distributed import keys
from roboflow_distributed.batches import get_batch, list_units, submit_batch
from roboflow_distributed.lifecycle import close_batch
from roboflow_distributed.records import BatchPhase, MergeState, read
from roboflow_distributed.store import SqliteStore, Store, open_store
from roboflow_pipeline import Dataset
from roboflow_storage import Storage

__all__ = ["moto_server", "s3_bucket"]

ROBOFLOW = [sys.executable, "-c", "import sys; from roboflow_cli.main import cli; sys.exit(cli())"]

WATCHING = dataclasses.replace(FAST, scan_interval=1.0, publish_episodes=2, publish_interval=120.0)
"""Lists the sources every second and publishes every two converted recordings (the interval
never comes first in the test)."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = SqliteStore(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture(params=["local", "s3"])
def inbox(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Callable[[str, bytes], None]]:
    """A watched source and how to put a recording (name, bytes) into it."""
    if request.param == "local":
        root = tmp_path / "inbox"
        root.mkdir()

        def put_local(name: str, data: bytes) -> None:
            (root / name).write_bytes(data)

        return str(root), put_local
    bucket: S3Bucket = request.getfixturevalue("s3_bucket")
    storage = Storage.from_url(bucket.url("incoming"))

    def put_s3(name: str, data: bytes) -> None:
        storage.put(name, data)

    return bucket.url("incoming"), put_s3


def test_watched_source_grows_the_dataset_in_waves_and_close_completes_it(
    store: Store, tmp_path: Path, inbox: tuple[str, Callable[[str, bytes], None]]
) -> None:
    source, put = inbox
    recs = recordings(tmp_path / "made", 6, base=0.3)
    out = tmp_path / "ds"
    batch = submit_batch(store, [source], config_text(), str(out), watch=True).id
    assert get_batch(store, batch).status.record.watching
    pod = PodThread(store, ["all"], "p", exit_when_idle=False, settings=WATCHING).start()
    try:
        wait_for(lambda: get_batch(store, batch).status.record.phase is BatchPhase.RUNNING, 60, "running")
        for wave in range(2):
            for rec in recs[2 * wave : 2 * wave + 2]:
                put(rec.path.name, rec.path.read_bytes())
            n = 2 * wave + 2
            wait_for(lambda n=n: Dataset(str(out)).episodes() == n, 120, f"{n} episodes published")
            verify_dataset(out, recs[:n])  # the published dataset holds exactly these, frame-exact
            run_doctor(out)
        # wave 3: one recording complete, one still being written when the scanner lists it
        put(recs[4].path.name, recs[4].path.read_bytes())
        growing = recs[5].path.read_bytes()
        put(recs[5].path.name, growing[: len(growing) // 2])
        name = recs[5].path.name

        def sighted() -> bool:
            return any(name in e.value.decode() for e in store.scan(keys.sighted_of(batch)))

        wait_for(sighted, 60, "the growing file sighted")
        put(name, growing)  # it grew before the next listing; stable after two more
        assert name not in " ".join(u.record.source for u in list_units(store, batch))
        wait_for(lambda: Dataset(str(out)).episodes() == 6, 120, "6 episodes published")
        verify_dataset(out, recs)
        assert get_batch(store, batch).status.record.phase is BatchPhase.RUNNING
        close_batch(store, batch)
        status = wait_finished(store, batch)
    finally:
        pod.stop()
    assert status.phase is BatchPhase.COMPLETE and status.episodes == 6 and not status.watching
    units = [u.record for u in list_units(store, batch)]
    assert sorted(Path(u.source.split("?")[0]).name for u in units) == [r.path.name for r in recs]
    assert all(
        u.size == recs[i].path.stat().st_size for i, u in enumerate(sorted(units, key=lambda u: u.source))
    )
    verify_dataset(out, recs)  # closing added nothing twice
    run_doctor(out)
    shutil.rmtree(tmp_path / "made")


@pytest.mark.timeout(400)
def test_a_pod_killed_during_a_publish_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    recs = recordings(tmp_path / "made", 6, base=0.3)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    out = tmp_path / "ds"
    url = f"sqlite://{tmp_path / 'state.db'}"
    env = {
        **os.environ,
        **FAST_ENV,
        "ROBOFLOW_STORE": url,
        "SCANNER_SCAN_INTERVAL_SECS": "0.3",
        "FINALIZER_PUBLISH_EPISODES": "6",  # one publish of six groups of one episode
        "FINALIZER_PUBLISH_INTERVAL_SECS": "600",
        "FINALIZER_MERGE_GROUP": "1",
    }
    store = open_store(url)
    pods: list[subprocess.Popen[bytes]] = []
    try:
        batch = submit_batch(store, [str(inbox)], config_text(), str(out), watch=True).id
        pods.append(subprocess.Popen([*ROBOFLOW, "run", "--pod-id", "a"], env=env, stderr=subprocess.DEVNULL))
        for rec in recs:
            shutil.copy(rec.path, inbox / rec.path.name)

        def mid_publish() -> bool:
            merge = read(store, keys.merge(batch), MergeState)
            return merge is not None and 0 < merge.record.published < len(recs)

        wait_for(mid_publish, 200, "a publish half done")
        pods[0].send_signal(signal.SIGKILL)
        pods[0].wait(30)
        pods.append(subprocess.Popen([*ROBOFLOW, "run", "--pod-id", "b"], env=env, stderr=subprocess.DEVNULL))
        wait_for(lambda: Dataset(str(out)).episodes() == len(recs), 200, "every episode published")
        close_batch(store, batch)
        status = wait_finished(store, batch)
    finally:
        for pod in pods:
            if pod.poll() is None:
                pod.send_signal(signal.SIGTERM)
                pod.wait(60)
        store.close()
    assert status.phase is BatchPhase.COMPLETE and status.episodes == len(recs)
    verify_dataset(out, recs)  # each recording exactly once, in order, frame-exact
    run_doctor(out)
