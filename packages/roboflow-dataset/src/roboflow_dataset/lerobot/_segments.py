"""Segments of a staged episode, closed every ``segment_frames`` frames so that a killed stager resumes.

Segment ``n`` (six digits) of a staging directory consists of::

    segments/<n>/data.parquet     its rows
    segments/<n>/<camera>.mp4     its frames of each camera, keyframe first, pts from 0
    segments/<n>/state.npz        every statistics accumulator after its last frame
    segments/<n>.json             its manifest, written last (atomically)

A segment is closed exactly when its manifest exists and every file the manifest lists has the size
the manifest gives; closed segments are never changed again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np

from roboflow_core.config import VideoConfig
from roboflow_core.errors import DatasetError
from roboflow_dataset.lerobot._atomic import atomic_write
from roboflow_dataset.lerobot._staged import StagedVideo
from roboflow_dataset.lerobot.features import FeatureSpec
from roboflow_dataset.stats import ImageStats, VectorStats

SEGMENTS = "segments"
_FORMAT_VERSION = 1


class ClosedSegment(msgspec.Struct, frozen=True, kw_only=True):
    """A segment the stager has closed: its files are complete and will not change.

    Attributes:
        index: 0, 1, ... in frame order.
        start: Its first frame.
        end: One past its last frame.
        files: Its files, relative to the staging directory (POSIX), the manifest excluded:
            upload these first, in any order.
        manifest: Its manifest (relative path): upload it after ``files``, so that a present
            manifest means a complete segment.
    """

    index: int
    start: int
    end: int
    files: tuple[str, ...]
    manifest: str

    @property
    def frames(self) -> int:
        """Frames in the segment."""
        return self.end - self.start


class StagerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What a stager was opened with; a resumed stager continues with the same."""

    fps: int
    features: tuple[FeatureSpec, ...]
    cameras: tuple[str, ...]
    video: VideoConfig
    task: str
    source: str
    flush_rows: int
    segment_frames: int | None
    fingerprint: str


class SegmentManifest(msgspec.Struct, frozen=True, kw_only=True):
    """The content of ``segments/<n>.json``."""

    index: int
    start: int
    end: int
    settings: StagerSettings
    data: str
    videos: dict[str, StagedVideo]
    state: str
    frame_shapes: dict[str, tuple[int, ...]]
    sizes: dict[str, int]
    """Every file of the segment (relative path) -> its size in bytes."""
    format_version: int = _FORMAT_VERSION

    def closed(self) -> ClosedSegment:
        """The segment as the stager's ``on_segment`` callback gets it."""
        return ClosedSegment(
            index=self.index,
            start=self.start,
            end=self.end,
            files=tuple(self.sizes),
            manifest=manifest_name(self.index),
        )


def segment_dir(index: int) -> str:
    """Relative directory of segment ``index``'s files."""
    return f"{SEGMENTS}/{index:06d}"


def manifest_name(index: int) -> str:
    """Relative path of segment ``index``'s manifest."""
    return f"{segment_dir(index)}.json"


def seal_segment(directory: Path, manifest: SegmentManifest) -> None:
    """Make a segment's files durable (fsync), then write its manifest atomically."""
    for name in manifest.sizes:
        with (directory / name).open("rb") as handle:
            os.fsync(handle.fileno())
    data = msgspec.json.encode(manifest)
    atomic_write(directory / manifest_name(manifest.index), lambda temp: temp.write_bytes(data))


def read_segments(directory: Path) -> list[SegmentManifest]:
    """The closed segments 0, 1, ..., k of ``directory``: the longest such run with complete files.

    A manifest that is unreadable, out of place, or whose files are missing or of another size
    ends the run (it and everything after it are leftovers, not closed segments).
    """
    segments: list[SegmentManifest] = []
    decoder = msgspec.json.Decoder(SegmentManifest)
    while (path := directory / manifest_name(len(segments))).is_file():
        try:
            manifest = decoder.decode(path.read_bytes())
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            break
        start = segments[-1].end if segments else 0
        if (manifest.index, manifest.start, manifest.format_version) != (
            len(segments),
            start,
            _FORMAT_VERSION,
        ):
            break
        if not all(_size(directory / name) == size for name, size in manifest.sizes.items()):
            break
        segments.append(manifest)
    return segments


def remove_unlisted(directory: Path, segments: Sequence[SegmentManifest]) -> None:
    """Remove every file and directory under ``directory`` that no closed segment lists."""
    keep = {manifest_name(s.index) for s in segments} | {n for s in segments for n in s.sizes}
    for path in sorted(directory.rglob("*"), reverse=True):  # children before their directories
        name = path.relative_to(directory).as_posix()
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
        elif name not in keep:
            path.unlink()


def save_state(path: Path, vectors: Sequence[VectorStats], images: Sequence[ImageStats]) -> None:
    """Write the accumulators' states into one ``.npz`` (``path`` must end in ``.npz``)."""
    arrays = {f"v{i}.{k}": v for i, acc in enumerate(vectors) for k, v in acc.state().items()}
    arrays |= {f"c{i}.{k}": v for i, acc in enumerate(images) for k, v in acc.state().items()}
    np.savez(path, allow_pickle=False, **arrays)


def load_state(path: Path, vectors: int, images: int) -> tuple[list[VectorStats], list[ImageStats]]:
    """The accumulators :func:`save_state` wrote, in the same order.

    Raises:
        DatasetError: The file is unreadable or does not hold that many accumulators.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        return (
            [VectorStats.from_state(_prefixed(arrays, f"v{i}.")) for i in range(vectors)],
            [ImageStats.from_state(_prefixed(arrays, f"c{i}.")) for i in range(images)],
        )
    except (OSError, ValueError) as err:
        raise DatasetError(f"unreadable statistics state: {err}", path=str(path)) from err


def _prefixed(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {name[len(prefix) :]: value for name, value in arrays.items() if name.startswith(prefix)}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size if path.is_file() else -1
    except OSError:
        return -1
