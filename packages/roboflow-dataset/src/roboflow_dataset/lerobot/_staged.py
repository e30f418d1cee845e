"""A finished staged episode: the content of its ``episode.json``, and reading it back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from roboflow_core.config import DepthConfig
from roboflow_core.errors import DatasetError
from roboflow_dataset.lerobot._atomic import atomic_write_json
from roboflow_dataset.lerobot.depth import DepthUnit
from roboflow_dataset.lerobot.features import FeatureSpec
from roboflow_dataset.stats import FeatureStats

MANIFEST = "episode.json"
DATA_FILE = "data.parquet"
FORMAT_VERSION = 2
"""2: an episode may consist of several parts (segments); 1 (still read): one data file, one mp4
per camera (``file`` instead of ``files``)."""


class StagedVideo(msgspec.Struct, frozen=True, kw_only=True):
    """One camera's mp4s in a staging directory, as probed after encoding.

    Attributes:
        files: The mp4s (relative to the staging directory), one per part, in frame order; each
            starts with a keyframe at pts 0.
        frames: Frames in all of them.
        depth_unit: For a depth camera, the unit of its source values (``mm`` or ``m``).
        depth: For a depth camera, the quantizer and encoder settings of its 12-bit codes.
        sizes: Bytes of each file when it was probed (empty in stages of earlier versions): a
            file of another size is not the one whose frames were counted.
    """

    files: tuple[str, ...]
    frames: int
    width: int
    height: int
    codec: str
    pix_fmt: str
    backend: str
    depth_unit: DepthUnit | None = None
    depth: DepthConfig | None = None
    sizes: tuple[int, ...] = ()


class StagedEpisode(msgspec.Struct, frozen=True, kw_only=True):
    """A finished staging directory (the content of its ``episode.json``, plus where it is).

    Attributes:
        dir: The staging directory.
        fps: Frame rate of the episode.
        length: Number of frames.
        task: Task description of every frame.
        source: Where the episode came from (a recording path or URL), for messages.
        features: The numeric features, in column order (without the default columns).
        videos: Camera key -> its staged mp4s.
        stats: Per-episode statistics of the numeric features, cameras, ``timestamp`` and
            ``frame_index``.
        data_files: The parquet parts (relative paths), one per part, in frame order.
        part_lengths: Frames of each part (they add up to ``length``).
        fingerprint: What was staged, as the stager's caller identified it (empty if not given).
    """

    dir: Path
    fps: int
    length: int
    task: str
    source: str
    features: tuple[FeatureSpec, ...]
    videos: dict[str, StagedVideo]
    stats: dict[str, FeatureStats]
    data_files: tuple[str, ...]
    part_lengths: tuple[int, ...]
    fingerprint: str = ""
    format_version: int = FORMAT_VERSION

    @property
    def data_paths(self) -> tuple[Path, ...]:
        """The staged parquet parts, in frame order."""
        return tuple(self.dir / name for name in self.data_files)

    @property
    def data_path(self) -> Path:
        """The staged parquet of an episode staged in one part.

        Raises:
            DatasetError: The episode has several parts (use :attr:`data_paths`).
        """
        return _only(self.data_paths, self.dir)

    def video_paths(self, camera: str) -> tuple[Path, ...]:
        """The staged mp4s of ``camera``, in frame order."""
        return tuple(self.dir / name for name in self.videos[camera].files)

    def video_path(self, camera: str) -> Path:
        """The staged mp4 of ``camera`` of an episode staged in one part.

        Raises:
            DatasetError: The episode has several parts (use :meth:`video_paths`).
        """
        return _only(self.video_paths(camera), self.dir)

    @classmethod
    def load(cls, directory: str | Path) -> StagedEpisode:
        """Read a finished staging directory (format 1 or 2).

        Raises:
            DatasetError: ``episode.json`` is missing (the stage never finished), unreadable, of an
                unknown format, or names files that are not there.
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
            version = raw.get("format_version", 1)
            if version not in (1, FORMAT_VERSION):
                raise DatasetError(
                    f"staged with format {version}, this version reads 1 and {FORMAT_VERSION}",
                    path=str(directory),
                )
            if version == 1:
                raw = _upgrade_v1(raw)
            raw["dir"] = str(directory)
            episode = msgspec.convert(raw, cls, dec_hook=decode_path)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError, AttributeError, KeyError) as err:
            raise DatasetError(f"unreadable {MANIFEST}: {err!r}", path=str(manifest)) from err
        parts = {len(episode.data_files), len(episode.part_lengths)}
        parts |= {len(v.files) for v in episode.videos.values()}
        if len(parts) != 1 or sum(episode.part_lengths) != episode.length:
            raise DatasetError(f"{MANIFEST} lists inconsistent parts", path=str(manifest))
        for path in (*episode.data_paths, *(p for c in episode.videos for p in episode.video_paths(c))):
            if not path.is_file():
                raise DatasetError("staged file is missing; stage the episode again", path=str(path))
        return episode

    def write_manifest(self) -> None:
        """Write ``episode.json`` (atomically): the last step of staging."""
        raw = msgspec.to_builtins(self, enc_hook=str)
        del raw["dir"]
        atomic_write_json(self.dir / MANIFEST, raw)


def _only(paths: tuple[Path, ...], directory: Path) -> Path:
    if len(paths) != 1:
        raise DatasetError(f"the episode is staged in {len(paths)} parts, not one", path=str(directory))
    return paths[0]


def _upgrade_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """A format 1 manifest as format 2: one part."""
    videos = {}
    for key, video in raw["videos"].items():
        video = dict(video)
        video["files"] = [video.pop("file")]
        videos[key] = video
    return {
        **raw,
        "videos": videos,
        "data_files": [DATA_FILE],
        "part_lengths": [raw["length"]],
        "format_version": FORMAT_VERSION,
    }


def decode_path(kind: type, value: Any) -> Any:
    """msgspec ``dec_hook`` for ``Path`` fields."""
    if kind is Path:
        return Path(value)
    raise NotImplementedError(kind)
