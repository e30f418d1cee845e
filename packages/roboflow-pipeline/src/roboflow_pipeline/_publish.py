"""Datasets in an object store: merge in a local working directory, then upload, ``meta/info.json`` last.

The merge (:func:`roboflow_dataset.lerobot.merge_into_dataset`) works on a local directory. For a
target in a store, :meth:`roboflow_pipeline.dataset.Dataset.publish` uses :class:`RemoteDataset`, which:

1. downloads the existing dataset's ``meta/`` objects (``info.json``, episodes, tasks, stats),
   which is all the merge reads: appends start new data and video files and never open old ones,
   so old data and video objects are not downloaded;
2. lets the merge run in the working directory (it only sees the metadata, so its own clean-up
   of unreferenced files touches nothing remote);
3. deletes the store's unreferenced data, video and episodes-metadata objects (leftovers of an
   interrupted upload that the new ``info.json`` does not describe; LeRobot's reader globs them);
4. uploads every new or changed file (multipart through :meth:`Storage.open_writer` when larger than
   one part), the other ``meta/`` files after all data and videos, and ``meta/info.json`` last, so
   a dataset never looks complete before all its files are there; until then the old
   ``info.json`` (or none) describes only objects that were complete before.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Self

from roboflow_core import DatasetError
from roboflow_core.workdirs import process_workdir
from roboflow_dataset.lerobot import DEFAULT_CHUNKS_SIZE, DatasetFormat
from roboflow_dataset.lerobot.layout import layout_for
from roboflow_dataset.lerobot.reader import INFO, is_v3, read_episodes, read_info
from roboflow_storage import ObjectChangedError, ObjectExistsError, ObjectNotFoundError, Storage, upload_file

__all__ = ["RemoteDataset"]

_META = "meta"
_UNREFERENCED = ("data/", "videos/", "meta/episodes/")
_Signature = tuple[int, int, int]


def _signature(path: Path) -> _Signature:
    stat = path.stat()
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class RemoteDataset:
    """A dataset at a store URL, merged locally in ``workdir/dataset`` and published by :meth:`publish`.

    Use as a context manager: the working directory (under ``TMPDIR``) is removed on exit.

    Args:
        storage: The dataset's root in the store.
        uploads: Files uploaded at once (each large one also uploads its parts in parallel).
    """

    def __init__(self, storage: Storage, *, uploads: int = 4) -> None:
        self.storage = storage
        self.uploads = uploads
        self.workdir = Path(tempfile.mkdtemp(prefix="publish-", dir=process_workdir()))
        self.root = self.workdir / "dataset"
        self.root.mkdir()
        self._fetched: dict[str, _Signature] = {}
        self._info: tuple[str | None] | None = None  # (etag,) of the info.json fetched; None: none

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def fetch_metadata(self) -> bool:
        """Download the existing dataset's ``meta/`` objects; whether there is a dataset (an info.json).

        Raises:
            StorageError: Listing or a download failed.
        """
        try:
            raw_info, etag = self.storage.get_versioned(INFO)
        except ObjectNotFoundError:
            return False
        self._info = (etag,)
        for info in self.storage.list(_META):
            target = self.root / info.key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(raw_info if info.key == INFO else self.storage.get(info.key))
            self._fetched[info.key] = _signature(target)
        return True

    def publish(self, check: Callable[[], None] = lambda: None) -> int:
        """Upload the merged dataset; returns the dataset's size in the store, in bytes.

        Args:
            check: Called before each step (deletes, data and videos, metadata, ``info.json``);
                raises to stop, e.g. :meth:`DatasetLock.check` when the writer lock was lost.

        Raises:
            StorageError: An upload or delete failed after retries; ``meta/info.json`` is then
                not replaced, so the store still shows the dataset as it was before.
        """
        check()
        local = {p.relative_to(self.root).as_posix(): p for p in self.root.rglob("*") if p.is_file()}
        changed = {k: p for k, p in local.items() if self._fetched.get(k) != _signature(p)}
        self._delete_unreferenced(set(local))
        payload = sorted(k for k in changed if not k.startswith(f"{_META}/"))
        meta = sorted(k for k in changed if k.startswith(f"{_META}/") and k != INFO)
        for batch in (payload, meta):
            check()
            with ThreadPoolExecutor(self.uploads, thread_name_prefix="roboflow-upload") as pool:
                for future in [pool.submit(upload_file, self.storage, key, changed[key]) for key in batch]:
                    future.result()
        if INFO in changed:
            check()
            self._commit(changed[INFO].read_bytes())
        return sum(info.size for info in self.storage.list())

    def _commit(self, info: bytes) -> None:
        """Write ``info.json`` only over the one this merge started from (``If-Match``; create-only
        for a new dataset): a writer that lost its lock while stopped can never publish over the
        merge that superseded it.

        Raises:
            DatasetError: The store's ``info.json`` changed since it was fetched.
        """
        try:
            if self._info is None:
                self.storage.put(INFO, info, mode="create")
            elif self._info[0] is None:  # a store without etags: nothing to compare against
                self.storage.put(INFO, info)
            else:
                self.storage.replace(INFO, info, etag=self._info[0])
        except (ObjectExistsError, ObjectChangedError) as err:
            raise DatasetError(
                "another writer published this dataset meanwhile; this merge's info.json is not written",
                path=self.storage.url,
            ) from err

    def _referenced(self) -> set[str]:
        """Keys of the data, video and episodes-metadata files the merged dataset points to."""
        info = read_info(self.root)
        episodes = read_episodes(self.root, info)
        fmt: DatasetFormat = "lerobot-v3" if is_v3(info) else "lerobot-v2.1"
        layout = layout_for(fmt, self.root, int(info.get("chunks_size", DEFAULT_CHUNKS_SIZE)))
        videos = [k for k, f in info["features"].items() if f.get("dtype") == "video"]
        return {os.fspath(p.relative_to(self.root).as_posix()) for p in layout.referenced(episodes, videos)}

    def _delete_unreferenced(self, local: set[str]) -> None:
        keep = self._referenced() | local
        stale = [
            info.key
            for prefix in _UNREFERENCED
            for info in self.storage.list(prefix.rstrip("/"))
            if info.key not in keep
        ]
        for key in stale:
            self.storage.delete(key)
