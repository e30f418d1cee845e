"""A worker's spool (injected) holds every download of its units: conversions and the prefetch
of the unit claimed ahead; the environment's spool is never made."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests._servers import S3Bucket, moto_server, s3_bucket
from tests.roboflow_distributed._batch_helpers import FAST, config_text, recordings, store
from tests.roboflow_pipeline.test_convert import verify_dataset
from tests.roboflow_pipeline.test_convert_s3 import upload

from roboflow_distributed.batches import list_units, submit_batch
from roboflow_distributed.finalizer import Finalizer
from roboflow_distributed.records import UnitStatus
from roboflow_distributed.scanner import Scanner
from roboflow_distributed.store import Store
from roboflow_distributed.worker import Shutdown, Worker
from roboflow_storage import LruCache, Spool, Storage

__all__ = ["moto_server", "s3_bucket", "store"]


def test_a_workers_spool_gets_every_download(
    store: Store, tmp_path: Path, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    default_root = tmp_path / "default-spool"
    monkeypatch.setenv("ROBOFLOW_BUFFER_DIR", str(default_root))
    recs = recordings(tmp_path / "in", 3)
    bucket = Storage.from_url(s3_bucket.url())
    for rec in recs:
        upload(Path(rec.path), bucket, "in")
    names = [Path(rec.path).name for rec in recs]
    spec = submit_batch(store, [s3_bucket.url(f"in/{n}") for n in names], config_text(), str(tmp_path / "ds"))
    Scanner(store, "s", FAST).tick()
    own = Spool(LruCache(tmp_path / "own-spool", max_bytes=64 << 20))
    worker = Worker(store, "w1", FAST, Shutdown(5.0), spool=own)
    try:
        while worker.tick():
            pass
        assert [u.record.status for u in list_units(store, spec.id)] == [UnitStatus.COMPLETE] * 3
        sizes = sorted(bucket.head(f"in/{n}").size for n in names)
        assert sorted(p.stat().st_size for p in own.cache.directory.iterdir()) == sizes
        assert not default_root.exists(), "a reader fell back to the environment's spool"
        assert Finalizer(store, "f", FAST).tick() or Finalizer(store, "f", FAST).tick()
        verify_dataset(tmp_path / "ds", recs)
    finally:
        own.cache.close()
