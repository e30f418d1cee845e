"""Looking into a batch's output dataset (local or in an object store) without copying it whole.

Reads ``meta/info.json`` and the episodes metadata, an episode's rows of its data file (only the
row groups and columns needed, through ranged reads), and tells where each camera's frames of an
episode are (which video file, from which second to which), for the episode viewer.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from roboflow_core import DatasetError, NotFoundError
from roboflow_distributed.views import (
    CameraVideo,
    DatasetView,
    EpisodeFrames,
    EpisodeView,
    FeatureSeries,
    FeatureView,
)
from roboflow_pipeline import Dataset
from roboflow_storage import ObjectNotFoundError, Storage, display_url, local_path

__all__ = ["DatasetReader"]

_VECTOR_DTYPES = ("float32", "float64", "int32", "int64", "bool")
_SKIP = frozenset({"timestamp", "frame_index", "episode_index", "index", "task_index"})
_MAX_META_BYTES = 64 << 20


class DatasetReader:
    """A LeRobot dataset (v3.0 or v2.1) at a path or store URL, read on demand.

    Args:
        url: The dataset's path or URL (a batch's ``output``).

    Raises:
        NotFoundError: (from the methods) no ``meta/info.json`` yet, or no such episode.
        DatasetError: Unreadable metadata or data.
        StorageError: The store cannot be read.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.storage = Storage.from_url(url)

    def info(self) -> dict[str, Any]:
        """``meta/info.json`` (read by :class:`roboflow_pipeline.Dataset`, its one owner)."""
        info = Dataset(self.storage).info()
        if info is None:
            raise NotFoundError(
                "the dataset has no meta/info.json (not merged yet)", url=display_url(self.url)
            )
        return info

    def summary(self) -> DatasetView:
        """Episodes, frames, features and cameras (the counts from :meth:`Dataset.summarize`).

        Raises:
            DatasetError: A count or the features cannot be parsed.
        """
        info = self.info()
        headline = Dataset(self.storage).summarize(info)
        features = [
            FeatureView(
                name=name,
                dtype=str(f.get("dtype")),
                shape=[int(x) for x in f.get("shape") or []],
                names=[str(n) for n in f["names"]] if isinstance(f.get("names"), list) else None,
            )
            for name, f in info.get("features", {}).items()
        ]
        return DatasetView(
            url=display_url(self.url),
            codebase_version=headline.codebase_version,
            robot_type=info.get("robot_type"),
            fps=int(headline.fps),
            total_episodes=headline.total_episodes,
            total_frames=headline.total_frames,
            features=features,
            cameras=[f.name for f in features if f.dtype == "video"],
        )

    def episodes(self) -> list[EpisodeView]:
        """Every episode, in order."""
        return [
            EpisodeView(
                index=int(row["episode_index"]), length=int(row["length"]), tasks=list(row.get("tasks") or [])
            )
            for row in self._episode_rows(self.info())
        ]

    def episode(self, index: int, *, max_points: int = 2000) -> EpisodeFrames:
        """An episode's state/action vectors (at most ``max_points`` frames, evenly strided) and
        where its camera videos are."""
        info = self.info()
        rows = [r for r in self._episode_rows(info) if int(r["episode_index"]) == index]
        if not rows:
            raise NotFoundError("no such episode", url=display_url(self.url), episode=index)
        row = rows[0]
        length, fps = int(row["length"]), int(info.get("fps", 0))
        features = info.get("features", {})
        vectors = [
            name for name, f in features.items() if name not in _SKIP and f.get("dtype") in _VECTOR_DTYPES
        ]
        table = self._episode_data(info, row, index, ["timestamp", *vectors])
        stride = max(1, -(-table.num_rows // max(max_points, 1)))
        table = table.take(pa.array(range(0, table.num_rows, stride)))
        series = []
        for name in vectors:
            column = table.column(name).to_pylist()
            width = len(column[0]) if column and isinstance(column[0], list) else 1
            values = [
                [float(v[i]) if isinstance(v, list) else float(v) for v in column] for i in range(width)
            ]
            names = features[name].get("names")
            labels = (
                [str(n) for n in names]
                if isinstance(names, list) and len(names) == width
                else [f"{name}[{i}]" for i in range(width)]
            )
            series.append(FeatureSeries(name=name, names=labels, values=values))
        videos = [
            self._video(info, row, index, name) for name, f in features.items() if f.get("dtype") == "video"
        ]
        return EpisodeFrames(
            episode=index,
            fps=fps,
            length=length,
            stride=stride,
            timestamps=[float(t) for t in table.column("timestamp").to_pylist()],
            series=series,
            videos=videos,
        )

    def video_key(self, index: int, camera: str) -> str:
        """The key (relative to the dataset) of the video file holding ``camera`` of episode ``index``."""
        info = self.info()
        if info.get("features", {}).get(camera, {}).get("dtype") != "video":
            raise NotFoundError("no such camera", url=display_url(self.url), camera=camera)
        rows = [r for r in self._episode_rows(info) if int(r["episode_index"]) == index]
        if not rows:
            raise NotFoundError("no such episode", url=display_url(self.url), episode=index)
        return self._video(info, rows[0], index, camera).path

    # --- layouts ----------------------------------------------------------------------------

    def _episode_rows(self, info: dict[str, Any]) -> list[dict[str, Any]]:
        if str(info.get("codebase_version", "")).startswith("v3"):
            rows: list[dict[str, Any]] = []
            for obj in sorted(self.storage.glob("meta/episodes/*/*.parquet"), key=lambda o: o.key):
                meta = self._parquet(obj.key)
                keep = [c for c in meta.schema_arrow.names if not c.startswith("stats/")]
                rows.extend(meta.read(columns=keep).to_pylist())
            return sorted(rows, key=lambda r: int(r["episode_index"]))
        try:
            raw = self.storage.get("meta/episodes.jsonl")
        except ObjectNotFoundError:
            return []
        if len(raw) > _MAX_META_BYTES:
            raise DatasetError("meta/episodes.jsonl is too large to list", url=display_url(self.url))
        try:
            return sorted(
                (json.loads(line) for line in raw.decode().splitlines() if line.strip()),
                key=lambda r: int(r["episode_index"]),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise DatasetError(f"unreadable meta/episodes.jsonl: {err}", url=display_url(self.url)) from err

    def _episode_data(
        self, info: dict[str, Any], row: dict[str, Any], index: int, columns: list[str]
    ) -> pa.Table:
        if str(info.get("codebase_version", "")).startswith("v3"):
            key = str(info["data_path"]).format(
                chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
            )
            table = self._parquet(key).read(columns=[*columns, "episode_index"])
            table = table.filter(pc.equal(table.column("episode_index"), index))
        else:
            chunk = index // int(info.get("chunks_size", 1000))
            key = str(info["data_path"]).format(episode_chunk=chunk, episode_index=index)
            table = self._parquet(key).read(columns=columns)
        return table

    def _video(self, info: dict[str, Any], row: dict[str, Any], index: int, camera: str) -> CameraVideo:
        if str(info.get("codebase_version", "")).startswith("v3"):
            key = str(info["video_path"]).format(
                video_key=camera,
                chunk_index=row[f"videos/{camera}/chunk_index"],
                file_index=row[f"videos/{camera}/file_index"],
            )
            start, end = (
                float(row[f"videos/{camera}/from_timestamp"]),
                float(row[f"videos/{camera}/to_timestamp"]),
            )
        else:
            chunk = index // int(info.get("chunks_size", 1000))
            key = str(info["video_path"]).format(video_key=camera, episode_chunk=chunk, episode_index=index)
            start, end = 0.0, int(row["length"]) / max(int(info.get("fps", 1)), 1)
        return CameraVideo(camera=camera, path=key, from_s=start, to_s=end)

    def _parquet(self, key: str) -> pq.ParquetFile:
        try:
            if self.storage.is_local:
                return pq.ParquetFile(local_path(self.url) / key)
            return pq.ParquetFile(self.storage.open_reader(key))
        except ObjectNotFoundError as err:
            raise DatasetError(
                "a file the metadata names is missing", url=display_url(self.url), key=key
            ) from err
        except FileNotFoundError as err:
            raise DatasetError(
                "a file the metadata names is missing", url=display_url(self.url), key=key
            ) from err
        except (OSError, pa.ArrowException) as err:
            raise DatasetError(f"unreadable parquet: {err}", url=display_url(self.url), key=key) from err
