"""Staging one episode on disk, streamed frame by frame, before it is merged into a dataset.

A staging directory holds::

    data.parquet           numeric features + timestamp + frame_index, one row group per flush
    videos/<camera>.mp4    one stream per camera, frame i at pts i/fps
    episode.json           written last (atomically): length, task, features, videos, stats

A directory without ``episode.json`` is an incomplete stage and is refused by
:meth:`StagedEpisode.load`.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from roboflow_core.config import VideoConfig
from roboflow_core.errors import DatasetError
from roboflow_dataset.lerobot._atomic import atomic_write_json
from roboflow_dataset.lerobot.features import DEFAULT_FEATURES, FeatureSpec, arrow_schema
from roboflow_dataset.stats import FeatureStats, ImageStats, VectorStats
from roboflow_media import BackgroundEncoder, open_encoder, probe_video

__all__ = ["EpisodeStager", "StagedEpisode", "StagedVideo"]

MANIFEST = "episode.json"
DATA_FILE = "data.parquet"
_FORMAT_VERSION = 1
_PTS_TOLERANCE_S = 1e-4
_STAGED_DEFAULTS = DEFAULT_FEATURES[:2]
"""``timestamp`` and ``frame_index``: the default columns known before the merge."""


class StagedVideo(msgspec.Struct, frozen=True, kw_only=True):
    """One camera's mp4 in a staging directory, as probed after encoding."""

    file: str
    frames: int
    width: int
    height: int
    codec: str
    pix_fmt: str
    backend: str


class StagedEpisode(msgspec.Struct, frozen=True, kw_only=True):
    """A finished staging directory (the content of its ``episode.json``, plus where it is).

    Attributes:
        dir: The staging directory.
        fps: Frame rate of the episode.
        length: Number of frames.
        task: Task description of every frame.
        source: Where the episode came from (a recording path or URL), for messages.
        features: The numeric features, in column order (without the default columns).
        videos: Camera key -> its staged mp4.
        stats: Per-episode statistics of the numeric features, cameras, ``timestamp`` and
            ``frame_index``.
    """

    dir: Path
    fps: int
    length: int
    task: str
    source: str
    features: tuple[FeatureSpec, ...]
    videos: dict[str, StagedVideo]
    stats: dict[str, FeatureStats]
    format_version: int = _FORMAT_VERSION

    @property
    def data_path(self) -> Path:
        """The staged parquet of numeric rows."""
        return self.dir / DATA_FILE

    def video_path(self, camera: str) -> Path:
        """The staged mp4 of ``camera``."""
        return self.dir / self.videos[camera].file

    @classmethod
    def load(cls, directory: str | Path) -> StagedEpisode:
        """Read a finished staging directory.

        Raises:
            DatasetError: ``episode.json`` is missing (the stage never finished), unreadable, or
                names files that are not there.
        """
        directory = Path(directory)
        manifest = directory / MANIFEST
        if not manifest.is_file():
            raise DatasetError(
                f"incomplete staged episode: {MANIFEST} is missing (staging did not finish); stage it again",
                path=str(directory),
            )
        try:
            raw = msgspec.json.decode(manifest.read_bytes())
            raw["dir"] = str(directory)
            episode = msgspec.convert(raw, cls, dec_hook=_decode_path)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as err:
            raise DatasetError(f"unreadable {MANIFEST}: {err}", path=str(manifest)) from err
        if episode.format_version != _FORMAT_VERSION:
            raise DatasetError(
                f"staged with format {episode.format_version}, this version reads {_FORMAT_VERSION}",
                path=str(directory),
            )
        for path in (episode.data_path, *map(episode.video_path, episode.videos)):
            if not path.is_file():
                raise DatasetError("staged file is missing; stage the episode again", path=str(path))
        return episode

    def _write_manifest(self) -> None:
        raw = msgspec.to_builtins(self, enc_hook=str)
        del raw["dir"]
        atomic_write_json(self.dir / MANIFEST, raw)


def _decode_path(kind: type, value: Any) -> Any:
    if kind is Path:
        return Path(value)
    raise NotImplementedError(kind)


class EpisodeStager:
    """Streams one episode into a staging directory with bounded memory.

    Numeric rows are buffered up to ``flush_rows`` and written as one parquet row group; each camera
    gets a background encoder, opened on its first frame (the frame size comes from it); statistics
    are accumulated as frames arrive. Use it as a context manager, or call :meth:`abort` on failure.

    Args:
        staging_dir: Directory to create; it must not exist or be empty.
        fps: Frame rate; frame i is at ``i / fps`` seconds.
        features: The numeric features, in column order.
        cameras: Camera keys (``observation.images.<name>``), each with a frame at every frame.
        video: Encoder settings.
        task: Task description of the episode.
        source: Where the episode comes from, for messages.
        flush_rows: Rows buffered before a row group is written.

    Raises:
        DatasetError: Bad arguments or a non-empty staging directory.
    """

    def __init__(
        self,
        staging_dir: str | Path,
        *,
        fps: int,
        features: Sequence[FeatureSpec],
        cameras: Sequence[str],
        video: VideoConfig,
        task: str,
        source: str,
        flush_rows: int = 1000,
    ) -> None:
        self._dir = Path(staging_dir)
        names = [f.name for f in features] + list(cameras)
        clash = {n for n in names if names.count(n) > 1} | {f.name for f in DEFAULT_FEATURES} & set(names)
        if clash:
            raise DatasetError(f"feature names used twice or reserved: {sorted(clash)}", path=str(self._dir))
        if fps <= 0 or flush_rows <= 0:
            raise DatasetError(f"fps and flush_rows must be > 0, got {fps} and {flush_rows}")
        if self._dir.exists() and any(self._dir.iterdir()):
            raise DatasetError("staging directory is not empty; remove it first", path=str(self._dir))
        self._schema = arrow_schema([*_STAGED_DEFAULTS, *features])  # validates the features
        (self._dir / "videos").mkdir(parents=True, exist_ok=True)
        self._fps = fps
        self._features = tuple(features)
        self._cameras = tuple(cameras)
        self._video = video
        self._task = task
        self._source = source
        self._flush_rows = flush_rows
        self._writer: pq.ParquetWriter | None = None
        self._rows: dict[str, list[npt.NDArray[Any]]] = {f.name: [] for f in features}
        self._flushed = 0
        self._length = 0
        self._numeric_stats = {f.name: VectorStats(f.shape[0]) for f in (*_STAGED_DEFAULTS, *features)}
        self._image_stats = {camera: ImageStats() for camera in cameras}
        self._encoders: dict[str, BackgroundEncoder] = {}
        self._frame_shapes: dict[str, tuple[int, ...]] = {}
        self._done = False
        self._finished = False

    @property
    def length(self) -> int:
        """Frames added so far."""
        return self._length

    def __enter__(self) -> EpisodeStager:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is not None:
            self.abort()

    def add_frame(
        self, numeric: Mapping[str, npt.ArrayLike], images: Mapping[str, npt.NDArray[np.uint8]]
    ) -> None:
        """Add the next frame. Image arrays are handed to the encoders: do not modify them afterwards.

        Args:
            numeric: Feature name -> value of that feature's shape, for every numeric feature.
            images: Camera key -> ``(H, W, 3)`` uint8 RGB frame, for every camera.

        Raises:
            DatasetError: A feature or camera is missing, unknown, or has the wrong shape.
        """
        self._check_open()
        where = f"frame {self._length}"
        _check_keys("numeric features", numeric, [f.name for f in self._features], where, self._source)
        _check_keys("cameras", images, self._cameras, where, self._source)
        for feature in self._features:
            value = np.asarray(numeric[feature.name], dtype=feature.dtype)
            if value.shape not in (feature.shape, ()) or value.size != feature.shape[0]:
                raise DatasetError(
                    f"{where}: {feature.name} has shape {value.shape}, declared {feature.shape}",
                    path=self._source,
                )
            self._rows[feature.name].append(value.reshape(feature.shape))
        for camera in self._cameras:
            self._encode(camera, images[camera])
        self._length += 1
        if self._length - self._flushed >= self._flush_rows:
            self._flush()

    def finish(self) -> StagedEpisode:
        """Close the encoders, check the videos, write ``episode.json`` last.

        On failure the staging directory is removed.

        Raises:
            DatasetError: No frames, or a video's frame count or first pts is wrong.
        """
        self._check_open()
        try:
            if self._length == 0:
                raise DatasetError("the episode has no frames", path=self._source)
            self._flush()
            if self._writer is not None:
                self._writer.close()
            videos = {camera: self._close_video(camera) for camera in self._cameras}
            stats = {name: acc.result() for name, acc in self._numeric_stats.items()}
            stats.update({name: acc.result() for name, acc in self._image_stats.items()})
            episode = StagedEpisode(
                dir=self._dir,
                fps=self._fps,
                length=self._length,
                task=self._task,
                source=self._source,
                features=self._features,
                videos=videos,
                stats=stats,
            )
            episode._write_manifest()
        except BaseException:
            self.abort()
            raise
        self._done = self._finished = True
        return episode

    def abort(self) -> None:
        """Stop the encoders and remove the staging directory.

        Safe to call more than once; after a successful :meth:`finish` it does nothing.
        """
        if self._finished:
            return
        self._done = True
        for encoder in self._encoders.values():
            with contextlib.suppress(Exception):
                encoder.abort()
        self._encoders.clear()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def _check_open(self) -> None:
        if self._done:
            raise DatasetError("the stager is already finished or aborted", path=str(self._dir))

    def _encode(self, camera: str, frame: npt.NDArray[np.uint8]) -> None:
        encoder = self._encoders.get(camera)
        if encoder is None:
            if frame.dtype != np.uint8:
                raise DatasetError(
                    f"{camera}: {frame.dtype} images (depth: 16UC1, mono16, 32FC1) cannot be stored yet; "
                    "LeRobot cameras are 8-bit videos. Remove this mapping or map an 8-bit image topic.",
                    path=self._source,
                )
            if frame.ndim != 3 or frame.shape[2] not in (1, 3):
                raise DatasetError(
                    f"{camera}: expected an (H, W, 3) frame, got {frame.shape}", path=self._source
                )
            height, width, channels = frame.shape
            path = self._dir / "videos" / f"{camera}.mp4"
            inner = open_encoder(
                path, width=width, height=height, fps=self._fps, config=self._video, channels=channels
            )
            encoder = self._encoders[camera] = BackgroundEncoder(inner)
            self._frame_shapes[camera] = frame.shape
        elif frame.shape != self._frame_shapes[camera]:
            raise DatasetError(
                f"{camera}: frame {self._length} is {frame.shape}, "
                f"the first was {self._frame_shapes[camera]}",
                path=self._source,
            )
        try:
            self._image_stats[camera].update(frame)
        except ValueError as err:
            raise DatasetError(f"{camera}: {err}", path=self._source) from err
        encoder.encode(frame)

    def _flush(self) -> None:
        start, end = self._flushed, self._length
        if end == start:
            return
        frame_index = np.arange(start, end, dtype=np.int64)
        values: dict[str, npt.NDArray[Any]] = {
            "timestamp": (frame_index / self._fps).astype(np.float32),
            "frame_index": frame_index,
        }
        for feature in self._features:
            values[feature.name] = np.stack(self._rows[feature.name])
            self._rows[feature.name].clear()
        columns = []
        for feature in (*_STAGED_DEFAULTS, *self._features):
            self._numeric_stats[feature.name].update(values[feature.name].reshape(end - start, -1))
            columns.append(feature.column(values[feature.name]))
        table = pa.Table.from_arrays(columns, schema=self._schema)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._dir / DATA_FILE, self._schema)
        self._writer.write_table(table, row_group_size=end - start)
        self._flushed = end

    def _close_video(self, camera: str) -> StagedVideo:
        encoded = self._encoders.pop(camera).close()
        probe = probe_video(encoded.path)
        path = Path(encoded.path)
        if probe.frames != self._length:
            raise DatasetError(f"video has {probe.frames} frames, expected {self._length}", path=str(path))
        if abs(probe.first_pts_s) > _PTS_TOLERANCE_S:
            raise DatasetError(f"video starts at pts {probe.first_pts_s} s, expected 0", path=str(path))
        return StagedVideo(
            file=str(path.relative_to(self._dir)),
            frames=probe.frames,
            width=probe.width,
            height=probe.height,
            codec=probe.codec,
            pix_fmt=probe.pix_fmt,
            backend=encoded.backend,
        )


def _check_keys(
    what: str, given: Mapping[str, Any], declared: Sequence[str], where: str, source: str
) -> None:
    missing = set(declared) - set(given)
    unknown = set(given) - set(declared)
    if missing or unknown:
        raise DatasetError(
            f"{where}: {what} missing {sorted(missing)}, not declared {sorted(unknown)}", path=source
        )
