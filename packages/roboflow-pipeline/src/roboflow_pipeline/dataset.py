"""The LeRobot dataset at a path or store URL: the one owner of reading and publishing it.

:class:`Dataset` is what the local ``convert``, the distributed finalizer and the operations
service (CLI, REST API, console) call: its episode count (what a restarted merge compares
against), ``meta/info.json`` and its summary, and
:meth:`Dataset.publish`, which takes the writer lock (:class:`~roboflow_pipeline.DatasetLock`),
merges staged episodes (:func:`roboflow_dataset.lerobot.merge_into_dataset`) in place or, for a
store, in a local working directory uploaded by ``_publish.RemoteDataset`` with ``info.json`` last.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roboflow_core import DatasetError
from roboflow_dataset.lerobot import StagedEpisode
from roboflow_dataset.lerobot.reader import INFO
from roboflow_pipeline._lock import LOCK_KEY, DatasetLock
from roboflow_storage import ObjectNotFoundError, Storage

if TYPE_CHECKING:
    from roboflow_dataset.lerobot import DatasetFormat

__all__ = ["Dataset", "DatasetSummary", "Published"]


@dataclass(frozen=True, slots=True)
class Published:
    """What :meth:`Dataset.publish` did."""

    total_episodes: int
    output_bytes: int


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """The headline of a dataset's ``meta/info.json``."""

    codebase_version: str
    total_episodes: int
    total_frames: int
    fps: float
    features: tuple[str, ...]
    cameras: tuple[str, ...]


def _is_video(feature: object) -> bool:
    return isinstance(feature, dict) and feature.get("dtype") == "video"


class Dataset:
    """The dataset at ``output``: a directory, a store URL, or a :class:`Storage` at its root.

    Nothing is read or written until a method is called.
    """

    def __init__(self, output: str | os.PathLike[str] | Storage) -> None:
        self.storage = output if isinstance(output, Storage) else Storage.from_url(os.fspath(output))

    @property
    def url(self) -> str:
        """The dataset's root URL."""
        return self.storage.url

    def info(self) -> dict[str, Any] | None:
        """``meta/info.json``; ``None`` when there is no dataset yet.

        Raises:
            DatasetError: ``info.json`` exists but is not a JSON object.
            StorageError: The store cannot be read.
        """
        try:
            raw = self.storage.get(INFO)
        except ObjectNotFoundError:
            return None
        try:
            info = json.loads(raw)
        except ValueError as err:
            raise DatasetError(f"unreadable {INFO}: {err}", path=self.url) from err
        if not isinstance(info, dict):
            raise DatasetError(f"unreadable {INFO}: not an object", path=self.url)
        return info

    def episodes(self) -> int:
        """``total_episodes``; 0 when there is no dataset yet.

        Raises:
            DatasetError: ``info.json`` exists but cannot be parsed.
            StorageError: The store cannot be read.
        """
        info = self.info()
        return 0 if info is None else int(self._field(info, "total_episodes", int))

    def summarize(self, info: dict[str, Any]) -> DatasetSummary:
        """The summary of this dataset's ``info`` (as :meth:`info` returned it).

        Raises:
            DatasetError: A count or the features cannot be parsed.
        """
        features = info.get("features", {})
        if not isinstance(features, dict):
            raise DatasetError(f"unreadable {INFO}: features is not an object", path=self.url)
        return DatasetSummary(
            codebase_version=str(info.get("codebase_version", "")),
            total_episodes=int(self._field(info, "total_episodes", int)),
            total_frames=int(self._field(info, "total_frames", int)),
            fps=self._field(info, "fps", float),
            features=tuple(features),
            cameras=tuple(sorted(k for k, f in features.items() if _is_video(f))),
        )

    def _field(self, info: dict[str, Any], name: str, kind: type[int] | type[float]) -> float:
        try:
            return kind(info[name])
        except (ValueError, KeyError, TypeError) as err:
            raise DatasetError(f"unreadable {INFO}: {name}: {err!r}", path=self.url) from err

    def publish(
        self,
        staged: Sequence[StagedEpisode],
        *,
        fmt: DatasetFormat,
        robot_type: str | None,
        fps: int,
        owner: str = "roboflow convert",
        fencing: int = 0,
        check: Callable[[], None] | None = None,
        chunks_size: int | None = None,
    ) -> Published:
        """Merge staged episodes, in order, into the dataset (local or in a store).

        A local dataset is merged in place; a dataset in a store is merged in a local working
        directory and uploaded by ``_publish.RemoteDataset``, ``meta/info.json`` last. Either way
        the dataset's writer lock (:class:`DatasetLock`, taken as ``owner`` with the fencing token
        ``fencing``) is held meanwhile, and checked before every step of the merge and the upload.

        Args:
            check: Also called before every step; raises to stop the merge before it writes more
                (the distributed finalizer checks that it still holds the dataset's lease).
            chunks_size: Episodes (v2.1) or files (v3) per chunk directory of a new dataset
                (``--episodes-per-chunk``); an existing dataset keeps its own.

        Raises:
            DatasetError: The episodes do not fit each other or the existing dataset, or another
                writer holds the dataset's lock.
            StorageError: An upload failed (the store still shows the dataset as it was).
        """
        from roboflow_dataset.lerobot import merge_into_dataset  # pyarrow, imported where rows are merged

        storage = self.storage
        with DatasetLock(storage, owner, fencing=fencing) as lock:

            def still_ours() -> None:
                lock.check()
                if check is not None:
                    check()

            merge = functools.partial(
                merge_into_dataset,
                staged=staged,
                fmt=fmt,
                robot_type=robot_type,
                fps=fps,
                chunks_size=chunks_size,
                check=still_ours,
            )
            if storage.is_local:
                root = Path(storage.location.prefix)
                result = merge(root)
                size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.name != LOCK_KEY)
                return Published(result.total_episodes, size)
            from roboflow_pipeline._publish import RemoteDataset  # a store's: layouts, pyarrow

            with RemoteDataset(storage) as publisher:
                publisher.fetch_metadata()
                result = merge(publisher.root)
                return Published(result.total_episodes, publisher.publish(still_ours))
