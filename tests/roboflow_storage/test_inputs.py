from pathlib import Path

import pytest

from roboflow_core import StorageError
from roboflow_storage import local_path, resolve_inputs


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_files_dirs_and_globs_expand_in_stable_order(tmp_path: Path) -> None:
    b = _touch(tmp_path / "b.mcap")
    a = _touch(tmp_path / "a.bag")
    _touch(tmp_path / "notes.txt")
    bagdir = tmp_path / "run1"
    _touch(bagdir / "run1_0.db3")
    got = resolve_inputs([str(tmp_path / "*"), b, f"file://{bagdir}"])
    assert got == [a, b, bagdir]


def test_missing_input_and_empty_glob_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no such file") as info:
        resolve_inputs([tmp_path / "gone.bag"])
    assert info.value.url.endswith("gone.bag")
    with pytest.raises(StorageError, match="matches no recording"):
        resolve_inputs([str(tmp_path / "*.mcap")])


def test_object_store_urls_are_not_silently_treated_as_paths() -> None:
    with pytest.raises(StorageError, match="not a local path"):
        local_path("s3://bucket/x.mcap")
    assert local_path("file:///tmp/a%20b.bag") == Path("/tmp/a b.bag")


def test_object_store_inputs_keys_prefixes_and_globs() -> None:
    from roboflow_storage import Storage, display_url, recording_bytes

    root = "memory://test-inputs-remote"
    store = Storage.from_url(root)
    for key in (
        "runs/a.mcap",
        "runs/b.bag",
        "runs/notes.txt",
        "runs/bag1/metadata.yaml",
        "runs/bag1/x_0.db3",
    ):
        store.put(key, b"xy")
    got = resolve_inputs([f"{root}/runs/*", f"{root}/runs/a.mcap", f"{root}/runs/bag1"])
    assert got == [f"{root}/runs/a.mcap", f"{root}/runs/b.bag", f"{root}/runs/bag1/"]
    assert recording_bytes(got[2]) == 4 and recording_bytes(got[0]) == 2
    with pytest.raises(StorageError, match="no such object or prefix"):
        resolve_inputs([f"{root}/runs/gone.mcap"])
    with pytest.raises(StorageError, match="matches no recording"):
        resolve_inputs([f"{root}/other/*.mcap"])
    assert display_url("s3://b/k.mcap?secret_access_key=s") == "s3://b/k.mcap"
