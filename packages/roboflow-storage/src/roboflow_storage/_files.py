"""Copy whole files and directory trees between the local disk and a :class:`Storage`."""

from __future__ import annotations

from pathlib import Path

from roboflow_core import telemetry
from roboflow_storage._storage import Storage

__all__ = ["download_tree", "upload_file"]


def upload_file(storage: Storage, key: str, path: Path) -> None:
    """Upload one file: a single put when it fits one part, else a streaming multipart upload
    (time counted as the current job's ``upload`` stage).

    Raises:
        StorageError: After retries.
    """
    with telemetry.timed("upload"):
        _upload(storage, key, path)


def _upload(storage: Storage, key: str, path: Path) -> None:
    if path.stat().st_size <= storage.part_size:
        storage.put(key, path.read_bytes())
        return
    with storage.open_writer(key) as out, path.open("rb") as src:
        while chunk := src.read(storage.part_size):
            out.write(chunk)


def download_tree(storage: Storage, prefix: str, root: Path) -> int:
    """Download every object under ``prefix/`` into ``root`` (keeping relative paths); the bytes.

    Raises:
        StorageError: Listing or a download failed.
    """
    prefix = prefix.rstrip("/") + "/"
    total = 0
    for info in storage.list(prefix.rstrip("/")):
        if not info.key.startswith(prefix):
            continue
        target = root / info.key[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(storage.get(info.key))
        total += info.size
    return total
