"""Staging one episode on disk, streamed frame by frame, before it is merged into a dataset.

Staged in one part (``segment_frames=None``), a staging directory holds::

    data.parquet           numeric features + timestamp + frame_index, one row group per flush
    videos/<camera>.mp4    one stream per camera, frame i at pts i/fps
    episode.json           written last (atomically): length, task, features, files, stats

Staged in segments, each ``segment_frames`` frames form one closed segment (its rows, an mp4 per
camera, the statistics so far and its manifest ``segments/<n>.json``, written last: see
:mod:`roboflow_dataset.lerobot._segments`), and ``episode.json`` lists the segments' files as the
episode's parts. A stage killed part-way keeps its closed segments, and
:meth:`EpisodeStager.resume` continues after the last one.

A directory without ``episode.json`` is an incomplete stage and is refused by
:meth:`StagedEpisode.load`.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import numpy.typing as npt

from roboflow_core.config import VideoConfig
from roboflow_core.errors import DatasetError
from roboflow_dataset.lerobot._segments import (
    ClosedSegment,
    SegmentManifest,
    StagerSettings,
    load_state,
    read_segments,
    remove_unlisted,
    save_state,
    seal_segment,
    segment_dir,
)
from roboflow_dataset.lerobot._staged import DATA_FILE, MANIFEST, StagedEpisode, StagedVideo
from roboflow_dataset.lerobot.depth import DepthUnit, depth_unit_of, quantize_depth
from roboflow_dataset.lerobot.features import DEFAULT_FEATURES, FeatureSpec, arrow_schema
from roboflow_dataset.stats import ImageStats, VectorStats
from roboflow_media import (
    BackgroundEncoder,
    EncodedVideo,
    cores_per_encoder,
    open_encoder,
    probe_video,
)

if TYPE_CHECKING:  # pyarrow (~40 ms a process) is imported when the first rows are written
    import pyarrow as pa
    import pyarrow.parquet as pq

__all__ = ["MANIFEST", "ClosedSegment", "EpisodeStager", "StagedEpisode", "StagedVideo", "closed_segments"]

_PTS_TOLERANCE_S = 1e-4
_STAGED_DEFAULTS = DEFAULT_FEATURES[:2]
"""``timestamp`` and ``frame_index``: the default columns known before the merge."""
_STATE_FILE = "state.npz"

OnSegment = Callable[[ClosedSegment], None]


class EpisodeStager:
    """Streams one episode into a staging directory with bounded memory.

    Numeric rows are buffered up to ``flush_rows`` and written as one parquet row group; each camera
    gets a background encoder, opened on its first frame (the frame size comes from it); statistics
    are accumulated as frames arrive. Use it as a context manager, or call :meth:`abort` on failure.

    With ``segment_frames``, every ``segment_frames`` frames close a segment: the rows are flushed
    into the segment's own parquet, each camera's encoder is closed (the next segment's mp4 starts
    with a keyframe), the statistics accumulators are saved, and the segment manifest is written
    last; then ``on_segment`` gets the :class:`ClosedSegment`. :meth:`finish` closes the last,
    shorter segment too. Statistics are the same as staged in one part when ``segment_frames`` is
    a multiple of ``flush_rows``; otherwise mean and std may differ in the last bits (their chunk
    boundaries differ), min, max, count and quantiles do not.

    Args:
        staging_dir: Directory to create; it must not exist or be empty.
        fps: Frame rate; frame i is at ``i / fps`` seconds.
        features: The numeric features, in column order.
        cameras: Camera keys (``observation.images.<name>``), each with a frame at every frame.
        video: Encoder settings.
        task: Task description of the episode.
        source: Where the episode comes from, for messages.
        flush_rows: Rows buffered before a row group is written.
        segment_frames: Frames per segment; ``None`` stages the episode in one part.
        on_segment: Called with every segment once it is closed (in the calling thread). If it
            raises, the segment stays closed and the error propagates from :meth:`add_frame` or
            :meth:`finish`.
        fingerprint: What is being staged (e.g. a hash of source and config); stored in every
            segment and the episode, and required to match by :meth:`resume`.

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
        segment_frames: int | None = None,
        on_segment: OnSegment | None = None,
        fingerprint: str = "",
    ) -> None:
        directory = Path(staging_dir)
        names = [f.name for f in features] + list(cameras)
        clash = {n for n in names if names.count(n) > 1} | {f.name for f in DEFAULT_FEATURES} & set(names)
        if clash:
            raise DatasetError(f"feature names used twice or reserved: {sorted(clash)}", path=str(directory))
        if fps <= 0 or flush_rows <= 0 or (segment_frames is not None and segment_frames <= 0):
            raise DatasetError(
                "fps, flush_rows and segment_frames must be > 0, "
                f"got {fps}, {flush_rows} and {segment_frames}"
            )
        if directory.exists() and any(directory.iterdir()):
            raise DatasetError("staging directory is not empty; remove it first", path=str(directory))
        settings = StagerSettings(
            fps=fps,
            features=tuple(features),
            cameras=tuple(cameras),
            video=video,
            task=task,
            source=source,
            flush_rows=flush_rows,
            segment_frames=segment_frames,
            fingerprint=fingerprint,
        )
        self._setup(directory, settings, on_segment)
        directory.mkdir(parents=True, exist_ok=True)

    @classmethod
    def resume(
        cls, staging_dir: str | Path, *, fingerprint: str, on_segment: OnSegment | None = None
    ) -> EpisodeStager:
        """Continue a segmented stage after its last closed segment.

        The settings (fps, features, cameras, video, task, source, flush and segment sizes), the
        statistics and the frame sizes come from the last segment manifest; the next frame added
        is frame :attr:`length`. Every file no closed segment lists (what a killed run left of
        its unfinished segment, temporary files) is removed, but only once the fingerprint matched.
        Encoding continues with the backend that encoded the first segment, so that the segments
        can be joined.

        Args:
            staging_dir: A staging directory holding closed segments, without ``episode.json``.
            fingerprint: Must equal the one the stage was started with.
            on_segment: As for the constructor.

        Raises:
            DatasetError: No closed segment, an already finished stage, a different fingerprint, or
                an unreadable statistics state.
        """
        directory = Path(staging_dir)
        if (directory / MANIFEST).is_file():
            raise DatasetError(
                f"the stage is finished ({MANIFEST} exists): load it with StagedEpisode.load",
                path=str(directory),
            )
        segments = read_segments(directory)
        if not segments:
            raise DatasetError("nothing to resume: the directory has no closed segment", path=str(directory))
        settings = segments[-1].settings
        if any(s.settings != settings for s in segments) or settings.fingerprint != fingerprint:
            raise DatasetError(
                f"the staged segments are of something else (fingerprint {settings.fingerprint!r}, "
                f"expected {fingerprint!r}): a different recording or config; remove the staging "
                "directory to convert from the start",
                path=str(directory),
            )
        last = segments[-1]
        vectors, images = load_state(
            directory / last.state, len(_STAGED_DEFAULTS) + len(settings.features), len(settings.cameras)
        )
        remove_unlisted(directory, segments)
        stager = cls.__new__(cls)
        stager._setup(directory, settings, on_segment)
        stager._pinned = {  # "auto" must not pick another encoder than the first segment's
            camera: msgspec.structs.replace(settings.video, backend=video.backend)
            for camera, video in segments[0].videos.items()
        }
        stager._segments = segments
        stager._length = stager._flushed = stager._segment_start = last.end
        stager._numeric_stats = dict(zip(stager._numeric_stats, vectors, strict=True))
        stager._image_stats = dict(zip(stager._image_stats, images, strict=True))
        stager._frame_shapes = dict(last.frame_shapes)
        stager._units = {camera: stager._image_stats[camera].depth_unit for camera in stager._frame_shapes}
        return stager

    def _setup(self, directory: Path, settings: StagerSettings, on_segment: OnSegment | None) -> None:
        self._dir = directory
        self._settings = settings
        self._pinned: dict[str, VideoConfig] = {}
        for feature in (*_STAGED_DEFAULTS, *settings.features):
            feature.check_column()
        self._on_segment = on_segment
        self._writer: pq.ParquetWriter | None = None
        self._rows: dict[str, list[npt.NDArray[Any]]] = {f.name: [] for f in settings.features}
        self._flushed = 0
        self._length = 0
        self._segment_start = 0
        self._segments: list[SegmentManifest] = []
        self._numeric_stats = {
            f.name: VectorStats(f.shape[0]) for f in (*_STAGED_DEFAULTS, *settings.features)
        }
        self._image_stats = {camera: ImageStats() for camera in settings.cameras}
        self._encoders: dict[str, BackgroundEncoder] = {}
        self._closed: dict[str, StagedVideo] = {}
        """Each camera's checked video of the open part, set by its encoder's thread."""
        self._frame_shapes: dict[str, tuple[int, ...]] = {}
        self._units: dict[str, DepthUnit | None] = {}
        self._done = False
        self._finished = False

    @property
    def length(self) -> int:
        """Frames added so far (for a resumed stager, including those of the closed segments)."""
        return self._length

    @property
    def features(self) -> tuple[FeatureSpec, ...]:
        """The numeric features, in column order."""
        return self._settings.features

    @property
    def cameras(self) -> tuple[str, ...]:
        """The camera keys."""
        return self._settings.cameras

    @property
    def segments(self) -> tuple[ClosedSegment, ...]:
        """The closed segments, in order."""
        return tuple(s.closed() for s in self._segments)

    def __enter__(self) -> EpisodeStager:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is not None:
            self.abort()

    def add_frame(self, numeric: Mapping[str, npt.ArrayLike], images: Mapping[str, npt.NDArray[Any]]) -> None:
        """Add the next frame. Image arrays are handed to the encoders: do not modify them afterwards.

        Args:
            numeric: Feature name -> value of that feature's shape, for every numeric feature.
            images: Camera key -> ``(H, W, 3)`` uint8 RGB (or ``(H, W, 1)`` gray) frame, or a depth
                camera's ``(H, W, 1)`` ``uint16`` millimetres or ``float32`` metres (non-finite
                values are no measurement, stored as 0), for every camera. A camera keeps the
                kind of its first frame.

        Raises:
            DatasetError: A feature or camera is missing, unknown, or has the wrong shape.
        """
        self._check_open()
        where = f"frame {self._length}"
        source = self._settings.source
        _check_keys("numeric features", numeric, [f.name for f in self.features], where, source)
        _check_keys("cameras", images, self.cameras, where, source)
        for feature in self.features:
            value = np.asarray(numeric[feature.name], dtype=feature.dtype)
            if value.shape not in (feature.shape, ()) or value.size != feature.shape[0]:
                raise DatasetError(
                    f"{where}: {feature.name} has shape {value.shape}, declared {feature.shape}", path=source
                )
            self._rows[feature.name].append(value.reshape(feature.shape))
        for camera in self.cameras:
            self._encode(camera, images[camera])
        self._length += 1
        if self._length - self._segment_start == self._settings.segment_frames:
            self._close_segment()
        elif self._length - self._flushed >= self._settings.flush_rows:
            self._flush()

    def finish(self) -> StagedEpisode:
        """Close the encoders (and the last segment), check the videos, write ``episode.json`` last.

        On failure the stager is aborted (see :meth:`abort`).

        Raises:
            DatasetError: No frames, or a video's frame count or first pts is wrong.
        """
        self._check_open()
        try:
            if self._length == 0:
                raise DatasetError("the episode has no frames", path=self._settings.source)
            data_files: tuple[str, ...]
            part_lengths: tuple[int, ...]
            # the encoders flush while the rows are written and their statistics computed
            data = self._close_rows() if self._length > self._segment_start else None
            stats = {name: acc.result() for name, acc in self._numeric_stats.items()}
            if self._settings.segment_frames is None:
                assert data is not None  # unsegmented, the only part is open
                data_files = (data,)
                videos = self._close_videos()
                part_lengths = (self._length,)
            else:
                if data is not None:
                    self._seal_segment(data)
                data_files = tuple(s.data for s in self._segments)
                videos = {camera: self._join_videos(camera) for camera in self.cameras}
                part_lengths = tuple(s.end - s.start for s in self._segments)
            stats.update({name: acc.result() for name, acc in self._image_stats.items()})
            episode = StagedEpisode(
                dir=self._dir,
                fps=self._settings.fps,
                length=self._length,
                task=self._settings.task,
                source=self._settings.source,
                features=self.features,
                videos=videos,
                stats=stats,
                data_files=data_files,
                part_lengths=part_lengths,
                fingerprint=self._settings.fingerprint,
            )
            episode.write_manifest()
        except BaseException:
            self.abort()
            raise
        self._done = self._finished = True
        return episode

    def abort(self) -> None:
        """Stop the encoders and remove what is not a closed segment.

        Staged in one part, or before the first segment closed, the staging directory is removed.
        With closed segments, only the unfinished segment's files (and any other file no closed
        segment lists) are removed: the closed segments stay for :meth:`resume`; remove the
        directory to discard them. Safe to call more than once; after a successful
        :meth:`finish` it does nothing.
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
        if self._segments:
            with contextlib.suppress(OSError):
                remove_unlisted(self._dir, self._segments)
        else:
            shutil.rmtree(self._dir, ignore_errors=True)

    def _check_open(self) -> None:
        if self._done:
            raise DatasetError("the stager is already finished or aborted", path=str(self._dir))

    def _part_file(self, camera: str | None) -> Path:
        """The open part's parquet (``camera=None``) or mp4 of ``camera``."""
        if self._settings.segment_frames is None:
            return self._dir / (DATA_FILE if camera is None else f"videos/{camera}.mp4")
        return (
            self._dir / segment_dir(len(self._segments)) / (DATA_FILE if camera is None else f"{camera}.mp4")
        )

    def _encode(self, camera: str, frame: npt.NDArray[Any]) -> None:
        source = self._settings.source
        first = self._frame_shapes.get(camera)
        unit = depth_unit_of(frame.dtype)
        if first is None:
            if frame.dtype != np.uint8 and unit is None:
                raise DatasetError(
                    f"{camera}: {frame.dtype} images cannot be stored; cameras are 8-bit colour or gray, "
                    "or depth as 16UC1/mono16 (millimetres) or 32FC1 (metres)",
                    path=source,
                )
            if frame.ndim != 3 or frame.shape[2] not in ((1, 3) if unit is None else (1,)):
                raise DatasetError(f"{camera}: expected an (H, W, 3) frame, got {frame.shape}", path=source)
            first = self._frame_shapes[camera] = frame.shape
            self._units[camera] = unit
        else:
            was_unit = self._units[camera]
            if frame.shape != first or unit != was_unit:
                was = f"{first} depth in {was_unit}" if was_unit else f"{first} uint8"
                raise DatasetError(
                    f"{camera}: frame {self._length} is {frame.shape} {frame.dtype}, the first was {was}",
                    path=source,
                )
        if unit == "m" and not np.isfinite(frame).all():  # NaN/inf: no measurement, stored as 0
            frame = np.where(np.isfinite(frame), frame, np.float32(0))
        encoder = self._encoders.get(camera) or self._open_video(camera, frame.shape, unit)
        encoder.encode(frame)

    def _open_video(self, camera: str, shape: tuple[int, ...], unit: DepthUnit | None) -> BackgroundEncoder:
        """The camera's encoder, whose worker thread also quantizes depth before encoding a frame and
        counts each frame's statistics (off the thread that stages the frames) right after encoding
        it, while its pixels are still in the CPU's caches."""
        height, width, channels = shape
        path = self._part_file(camera)
        path.parent.mkdir(parents=True, exist_ok=True)
        inner = open_encoder(
            path,
            width=width,
            height=height,
            fps=self._settings.fps,
            config=self._pinned.get(camera, self._settings.video),
            channels=channels,
            depth=unit is not None,
            cores=cores_per_encoder(len(self.cameras)),  # the cameras encode at once
        )
        stats, depth = self._image_stats[camera], self._settings.video.depth

        def observe(frame: npt.NDArray[Any]) -> None:
            try:
                stats.update(frame, depth_unit=unit)
            except ValueError as err:
                raise DatasetError(f"{camera}: {err}", path=self._settings.source) from err

        def check(encoded: EncodedVideo) -> None:
            self._closed[camera] = self._checked_video(camera, encoded)

        quantize = None if unit is None else functools.partial(quantize_depth, unit=unit, config=depth)
        encoder = self._encoders[camera] = BackgroundEncoder(
            inner, prepare=quantize, observe=observe, on_closed=check
        )
        return encoder

    @functools.cached_property
    def _schema(self) -> pa.Schema:
        return arrow_schema([*_STAGED_DEFAULTS, *self.features])

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        start, end = self._flushed, self._length
        if end == start:
            return
        frame_index = np.arange(start, end, dtype=np.int64)
        values: dict[str, npt.NDArray[Any]] = {
            "timestamp": (frame_index / self._settings.fps).astype(np.float32),
            "frame_index": frame_index,
        }
        for feature in self.features:
            values[feature.name] = np.stack(self._rows[feature.name])
            self._rows[feature.name].clear()
        columns = []
        for feature in (*_STAGED_DEFAULTS, *self.features):
            self._numeric_stats[feature.name].update(values[feature.name].reshape(end - start, -1))
            columns.append(feature.column(values[feature.name]))
        table = pa.Table.from_arrays(columns, schema=self._schema)
        if self._writer is None:
            path = self._part_file(None)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(path, self._schema)
        self._writer.write_table(table, row_group_size=end - start)
        self._flushed = end

    def _close_writer(self) -> str:
        """Close the open part's parquet; its path relative to the staging directory."""
        assert self._writer is not None  # a part with frames has flushed rows
        self._writer.close()
        self._writer = None
        return self._part_file(None).relative_to(self._dir).as_posix()

    def _close_rows(self) -> str:
        """Close the open part's rows: tell every encoder to finish (each flushes and checks its
        video in its own thread, see :meth:`_checked_video`), then flush the rows and close the
        parquet while they do; the parquet's path relative to the staging directory."""
        for encoder in self._encoders.values():
            encoder.finish()
        self._flush()
        return self._close_writer()

    def _close_videos(self) -> dict[str, StagedVideo]:
        """Wait for every camera's encoder (told to finish by :meth:`_close_rows`); their videos."""
        videos = {}
        for camera in self.cameras:
            self._encoders.pop(camera).close()
            videos[camera] = self._closed.pop(camera)
        return videos

    def _checked_video(self, camera: str, encoded: EncodedVideo) -> StagedVideo:
        """The closed video of ``camera`` in the open part, once its frames and first pts are checked.
        Run by the camera's encoder thread, after the last frame of the part was added."""
        probe = probe_video(encoded.path)
        path = Path(encoded.path)
        expected = self._length - self._segment_start
        if probe.frames != expected:
            raise DatasetError(f"video has {probe.frames} frames, expected {expected}", path=str(path))
        if abs(probe.first_pts_s) > _PTS_TOLERANCE_S:
            raise DatasetError(f"video starts at pts {probe.first_pts_s} s, expected 0", path=str(path))
        unit = self._image_stats[camera].depth_unit
        return StagedVideo(
            files=(path.relative_to(self._dir).as_posix(),),
            frames=probe.frames,
            width=probe.width,
            height=probe.height,
            codec=probe.codec,
            pix_fmt=probe.pix_fmt,
            backend=encoded.backend,
            depth_unit=unit,
            depth=self._settings.video.depth if unit is not None else None,
            sizes=(path.stat().st_size,),
        )

    def _close_segment(self) -> None:
        """Close the open segment: rows, videos, statistics state, then its manifest; report it."""
        self._seal_segment(self._close_rows())

    def _seal_segment(self, data: str) -> None:
        """Finish closing the open segment, whose rows are in ``data`` (see :meth:`_close_rows`)."""
        index = len(self._segments)
        videos = self._close_videos()
        state = f"{segment_dir(index)}/{_STATE_FILE}"
        save_state(self._dir / state, list(self._numeric_stats.values()), list(self._image_stats.values()))
        files = [data, *(v.files[0] for v in videos.values()), state]
        manifest = SegmentManifest(
            index=index,
            start=self._segment_start,
            end=self._length,
            settings=self._settings,
            data=data,
            videos=videos,
            state=state,
            frame_shapes=dict(self._frame_shapes),
            sizes={name: (self._dir / name).stat().st_size for name in files},
        )
        seal_segment(self._dir, manifest)
        self._segments.append(manifest)
        self._segment_start = self._length
        if self._on_segment is not None:
            self._on_segment(manifest.closed())

    def _join_videos(self, camera: str) -> StagedVideo:
        """One camera's segment mp4s as the episode's video; they must be joinable by remux."""
        parts = [s.videos[camera] for s in self._segments]
        first = parts[0]
        for segment, part in zip(self._segments, parts, strict=True):
            if (part.width, part.height, part.codec, part.pix_fmt, part.backend) != (
                first.width,
                first.height,
                first.codec,
                first.pix_fmt,
                first.backend,
            ):
                raise DatasetError(
                    f"{camera}: segment {segment.index} is {part.width}x{part.height} {part.codec} "
                    f"{part.pix_fmt} ({part.backend}), segment 0 {first.width}x{first.height} {first.codec} "
                    f"{first.pix_fmt} ({first.backend}); they cannot be joined: convert again from the start",
                    path=str(self._dir),
                )
        sizes = tuple(size for p in parts for size in p.sizes)
        return msgspec.structs.replace(
            first,
            files=tuple(p.files[0] for p in parts),
            frames=sum(p.frames for p in parts),
            sizes=sizes if len(sizes) == len(parts) else (),  # segments of an earlier version: none
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


def closed_segments(staging_dir: str | Path) -> tuple[ClosedSegment, ...]:
    """The closed segments in ``staging_dir`` (complete, in order; none for a missing directory).

    A segment counts when its manifest and every file it lists (with the listed size) are there
    and all segments before it count too.
    """
    return tuple(s.closed() for s in read_segments(Path(staging_dir)))
