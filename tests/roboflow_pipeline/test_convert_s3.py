"""The same conversions from and into s3:// (a moto server on 127.0.0.1) as from and into local paths."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests._servers import (
    TEST_ACCESS_KEY,
    TEST_REGION,
    TEST_SECRET,
    FaultProxy,
    S3Bucket,
    Schedule,
    every_kth,
    fault_proxy,
    moto_server,
    multipart_uploads,
    s3_bucket,
)
from tests.roboflow_pipeline.test_convert import make_config, verify_dataset

from roboflow_cli.main import cli
from roboflow_core import StorageError
from roboflow_dataset.lerobot import read_dataset
from roboflow_dataset.sources import open_source
from roboflow_dataset.synth import SynthFormat, write_recording
from roboflow_media import probe_video
from roboflow_pipeline import convert
from roboflow_storage import LruCache, RetryPolicy, Spool, Storage, prefetch_recording

__all__ = ["fault_proxy", "moto_server", "s3_bucket"]

pytestmark = pytest.mark.object_store

FAST_RETRY = RetryPolicy(
    max_retries=4, initial_backoff_s=0.01, max_backoff_s=0.05, retry_timeout_s=10, connect_timeout_s=1
)
SUFFIX = {"mcap": ".mcap", "ros1": ".bag"}


def upload(local: Path, storage: Storage, prefix: str) -> None:
    """Copy a file, or a directory's files, to ``prefix`` in ``storage``."""
    files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
    for path in files:
        rel = path.name if local.is_file() else path.relative_to(local).as_posix()
        storage.put(f"{prefix}/{rel}".strip("/"), path.read_bytes())


def download(storage: Storage, target: Path) -> Path:
    """Copy every object of ``storage`` under ``target``."""
    for info in storage.list():
        path = target / info.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(storage.get(info.key))
    return target


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def assert_same_dataset(a: Path, b: Path) -> None:
    """Metadata and parquet byte-identical; videos the same files with the same frame counts.

    libx264 output is not byte-identical from run to run on this machine (its threading); the
    decoded content of every frame is checked against the source by ``verify_dataset``.
    """
    files_a, files_b = files_of(a), files_of(b)
    assert files_a.keys() == files_b.keys()
    for name, data in files_a.items():
        if name.endswith(".mp4"):
            assert probe_video(a / name).frames == probe_video(b / name).frames, name
        else:
            assert data == files_b[name], name


@pytest.mark.parametrize("fmt", ["mcap", "ros1", "ros2-db3", "ros2-mcap"])
def test_s3_in_and_out_gives_the_same_dataset_as_local(
    tmp_path: Path, s3_bucket: S3Bucket, fmt: SynthFormat
) -> None:
    rec = write_recording(
        tmp_path / f"rec{SUFFIX.get(fmt, '')}", fmt, duration_s=1.2, jitter_ms=3.0, drop_frames=(5,), seed=3
    )
    config = make_config(rec.cameras)
    name = Path(rec.path).name
    # a file becomes the object in/NAME; a bag directory the prefix in/NAME/
    upload(
        Path(rec.path), Storage.from_url(s3_bucket.url()), "in" if Path(rec.path).is_file() else f"in/{name}"
    )
    remote_in = s3_bucket.url(f"in/{name}")

    local = convert([rec.path], config, tmp_path / "local")
    to_s3 = convert([remote_in], config, s3_bucket.url("out/ds"))
    from_s3 = convert([remote_in], config, tmp_path / "from_s3")

    assert to_s3.output == f"s3://{s3_bucket.name}/out/ds" and "secret" not in to_s3.render()
    assert local.frames == to_s3.frames == from_s3.frames > 0
    assert to_s3.input_bytes == local.input_bytes
    remote = download(Storage.from_url(s3_bucket.url("out/ds")), tmp_path / "downloaded")
    verify_dataset(remote, [rec])
    verify_dataset(tmp_path / "from_s3", [rec])
    # same encoder, same frames: the very same files
    verify_dataset(tmp_path / "from_s3", [rec])
    assert_same_dataset(remote, tmp_path / "local")
    assert_same_dataset(tmp_path / "from_s3", tmp_path / "local")


def test_s3_glob_parallel_jobs_and_append(tmp_path: Path, s3_bucket: S3Bucket) -> None:
    recs = [
        write_recording(tmp_path / f"r{i}.bag", "ros1", duration_s=1.0 + 0.2 * i, seed=i) for i in range(3)
    ]
    bag_dir = write_recording(tmp_path / "bag3", "ros2-mcap", duration_s=1.0, seed=3)
    store = Storage.from_url(s3_bucket.url())
    for rec in recs:
        upload(Path(rec.path), store, "in")
    upload(Path(bag_dir.path), store, "in/bag3")
    store.put("in/notes.txt", b"not a recording")
    config = make_config(recs[0].cameras)
    out = s3_bucket.url("out/ds")

    first = convert([s3_bucket.url("in/r*.bag")], config, out, jobs=2)
    assert first.episodes == 3
    second = convert([s3_bucket.url("in/bag*")], config, out)  # a bag prefix matched by a glob
    assert second.total_episodes == 4
    convert([str(tmp_path / "r*.bag")], config, tmp_path / "local")
    convert([bag_dir.path], config, tmp_path / "local")

    remote = download(Storage.from_url(out), tmp_path / "downloaded")
    verify_dataset(remote, [*recs, bag_dir])
    assert read_dataset(remote).data.equals(read_dataset(tmp_path / "local").data)
    verify_dataset(tmp_path / "local", [*recs, bag_dir])
    assert_same_dataset(remote, tmp_path / "local")


@pytest.mark.parametrize("fmt", ["mcap", "ros1"])
def test_inspect_s3_gives_the_same_counts_as_local(
    tmp_path: Path, s3_bucket: S3Bucket, fmt: SynthFormat
) -> None:
    rec = write_recording(tmp_path / f"rec{SUFFIX[fmt]}", fmt, duration_s=1.0, seed=2)
    upload(Path(rec.path), Storage.from_url(s3_bucket.url()), "in")
    runner = CliRunner()
    local = runner.invoke(cli, ["inspect", str(rec.path), "--json"])
    remote = runner.invoke(cli, ["inspect", s3_bucket.url(f"in/{Path(rec.path).name}"), "--json"])
    assert local.exit_code == remote.exit_code == 0, remote.output
    a, b = json.loads(local.output), json.loads(remote.output)
    assert b["path"] == f"s3://{s3_bucket.name}/in/{Path(rec.path).name}"
    a.pop("path"), b.pop("path")
    assert a == b


def test_missing_remote_input_is_a_clear_error(s3_bucket: S3Bucket) -> None:
    with pytest.raises(StorageError, match="no such object or prefix") as info:
        convert([s3_bucket.url("in/absent.mcap")], make_config(["cam_high"]), s3_bucket.url("out"))
    assert "secret" not in str(info.value)
    with pytest.raises(StorageError, match="matches no recording"):
        convert([s3_bucket.url("in/*.mcap")], make_config(["cam_high"]), s3_bucket.url("out"))


def test_transient_faults_on_input_and_output_are_retried(
    tmp_path: Path, s3_bucket: S3Bucket, fault_proxy: Callable[[Schedule], FaultProxy]
) -> None:
    rec = write_recording(tmp_path / "rec.mcap", "mcap", duration_s=1.0, seed=4)
    upload(Path(rec.path), Storage.from_url(s3_bucket.url()), "in")
    proxy = fault_proxy(every_kth(3, 503))
    through = s3_bucket.url("in/rec.mcap", endpoint=proxy.endpoint)
    out = Storage.from_url(s3_bucket.url("out/ds", endpoint=proxy.endpoint), retry=FAST_RETRY)
    summary = convert([through], make_config(rec.cameras), out)
    assert summary.episodes == 1 and proxy.faults >= 3
    verify_dataset(download(Storage.from_url(s3_bucket.url("out/ds")), tmp_path / "ds"), [rec])


def test_permanent_fault_while_uploading_leaves_no_info_json(
    tmp_path: Path, s3_bucket: S3Bucket, fault_proxy: Callable[[Schedule], FaultProxy]
) -> None:
    rec = write_recording(tmp_path / "rec.mcap", "mcap", duration_s=1.0, seed=5)

    def videos_fail(_n: int, method: str, path: str) -> int | None:
        return 503 if method in ("PUT", "POST") and "/videos/" in path else None

    proxy = fault_proxy(videos_fail)
    out = Storage.from_url(s3_bucket.url("out/ds", endpoint=proxy.endpoint), retry=FAST_RETRY)
    with pytest.raises(StorageError, match=r"SlowDown|upload|put") as info:
        convert([rec.path], make_config(rec.cameras), out)
    assert "videos/" in str(info.value) and "secret" not in str(info.value)
    direct = Storage.from_url(s3_bucket.url("out/ds"))
    assert not direct.exists("meta/info.json")
    assert multipart_uploads(s3_bucket) == []


def test_oss_urls_with_credentials_from_the_oss_environment(
    tmp_path: Path, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """oss:// goes through the S3-compatible API: OSS_* variables, path-style for a non-OSS host."""
    monkeypatch.setenv("OSS_ENDPOINT", s3_bucket.endpoint)
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", TEST_ACCESS_KEY)
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", TEST_SECRET)
    monkeypatch.setenv("OSS_REGION", TEST_REGION)
    rec = write_recording(tmp_path / "rec.mcap", "mcap", duration_s=1.0)
    base = f"oss://{s3_bucket.name}"
    Storage.from_url(f"{base}/runs?virtual_hosted=false").put("rec.mcap", Path(rec.path).read_bytes())
    summary = convert(
        [f"{base}/runs/*.mcap?virtual_hosted=false"],
        make_config(rec.cameras),
        f"{base}/datasets/ds?virtual_hosted=false",
    )
    assert summary.episodes == 1 and TEST_SECRET not in summary.render()
    local = download(Storage.from_url(f"{base}/datasets/ds?virtual_hosted=false"), tmp_path / "ds")
    verify_dataset(local, [rec])


def test_a_callers_spool_gets_the_downloads_and_the_default_one_none(
    tmp_path: Path, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``spool=`` reaches every reader that downloads: the one pass (growing copy), two passes
    (``open_source``), the prefetch of the next recording, and worker processes (``jobs=2``)."""
    default_root = tmp_path / "default-spool"
    monkeypatch.setenv("ROBOFLOW_BUFFER_DIR", str(default_root))
    one = write_recording(tmp_path / "one.mcap", "mcap", duration_s=0.8, seed=6)
    two = write_recording(tmp_path / "two.bag", "ros1", duration_s=0.8, seed=7)
    store = Storage.from_url(s3_bucket.url())
    upload(Path(one.path), store, "in")
    upload(Path(two.path), store, "in")
    urls = [s3_bucket.url("in/one.mcap"), s3_bucket.url("in/two.bag")]
    sizes = {store.head("in/one.mcap").size, store.head("in/two.bag").size}
    own = Spool(LruCache(tmp_path / "own-spool", max_bytes=64 << 20))

    summary = convert(urls, make_config(one.cameras), tmp_path / "ds", spool=own)

    assert summary.episodes == 2
    verify_dataset(tmp_path / "ds", [one, two])
    assert own.cache.directory.parent == tmp_path / "own-spool"
    assert sorted(p.stat().st_size for p in own.cache.directory.iterdir()) == sorted(sizes)
    assert own.cache.size == sum(sizes)
    with open_source(urls[1], spool=own) as source:  # already spooled: read from the same entry
        assert source.format == "ros1" and len(own.cache) == 2
    assert prefetch_recording(urls[0], spool=own) == store.head("in/one.mcap").size
    assert len(own.cache) == 2

    again = convert(urls, make_config(one.cameras), tmp_path / "ds2", spool=own, jobs=2)
    assert again.episodes == 2
    verify_dataset(tmp_path / "ds2", [one, two])
    assert not default_root.exists()  # no reader fell back to the environment's spool
    sent = pickle.loads(pickle.dumps(own))  # what a worker process gets: its own spool there
    assert sent.cache.directory.parent == own.cache.directory.parent != sent.cache.directory
    assert (sent.cache.max_bytes, sent.part_size, sent.concurrency) == (own.cache.max_bytes, 64 << 20, 4)
    sent.cache.close()
    own.cache.close()
