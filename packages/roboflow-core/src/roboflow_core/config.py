"""Conversion config: TOML files parsed into msgspec Structs, validated, content-hashed.

The original's files keep working: ``[[mappings]]`` with ``mapping_type`` (or its alias ``type``),
the older ``[[mapping]]`` form with ``name``/``encoding``, ``annotation_file``, and the ``[streaming]``
table and ``[flushing] incremental_video_encoding`` where they state what roboflow does. No key is
accepted and ignored: a value roboflow cannot honour (``[streaming] enabled = false``,
``incremental_video_encoding = false``, a ``camera_key`` other than the feature, ``env_type``) is an
error that names the key and says why. Unknown keys are errors that name the key path.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import msgspec

from roboflow_core.errors import ConfigError

__all__ = [
    "AlignmentConfig",
    "DatasetConfig",
    "DepthConfig",
    "FlushingConfig",
    "Mapping",
    "MappingType",
    "Policy",
    "RoboflowConfig",
    "SourceConfig",
    "StreamingConfig",
    "VideoConfig",
    "load_config",
    "loads_config",
    "parse_config",
]


class MappingType(StrEnum):
    """What a mapped topic becomes in the dataset."""

    IMAGE = "image"
    STATE = "state"
    ACTION = "action"
    TIMESTAMP = "timestamp"
    OTHERSENSOR = "othersensor"
    AUDIO = "audio"


Policy = Literal["nearest", "hold", "drop"]
TimeSource = Literal["header", "log"]


class _Struct(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class DatasetConfig(_Struct, frozen=True):
    """``[dataset]``: what the dataset is called and its frame rate.

    ``max_episode_seconds`` bounds one episode (default 6 h): a recording whose mapped topics
    span more is refused before anything is allocated for its frames (a bogus timestamp would
    otherwise make billions of them).
    """

    name: str
    fps: int
    robot_type: str | None = None
    task: str = ""
    max_episode_seconds: float = 6 * 3600.0

    @property
    def max_episode_ns(self) -> int:
        """``max_episode_seconds`` in nanoseconds."""
        return int(self.max_episode_seconds * 1_000_000_000)


class Mapping(_Struct, frozen=True):
    """``[[mappings]]``: one topic mapped to one dataset feature.

    Several numeric mappings may share one feature name; their vectors are concatenated in
    mapping order (e.g. arm joints and gripper into ``observation.state``).
    """

    topic: str
    feature: str
    mapping_type: MappingType = MappingType.STATE
    camera_key: str | None = None  # the camera's video directory, as in the original: the feature's
    fields: tuple[str, ...] | None = None
    names: tuple[str, ...] | None = None
    policy: Policy | None = None
    tolerance_ms: float | None = None
    required: bool = True

    @property
    def is_image(self) -> bool:
        """Whether this mapping produces a camera (video) feature."""
        return self.mapping_type is MappingType.IMAGE

    @property
    def effective_policy(self) -> Policy:
        """The alignment policy: explicit, else ``nearest`` for images and ``hold`` for the rest."""
        if self.policy is not None:
            return self.policy
        return "nearest" if self.is_image else "hold"


_PROFILES: dict[str, dict[str, tuple[str | int, int]]] = {
    # profile -> codec family -> (preset, crf)
    "quality": {"h264": ("fast", 18), "av1": (6, 24)},
    "storage": {"h264": ("medium", 23), "av1": (8, 30)},
    "prototype": {"h264": ("veryfast", 32), "av1": (12, 40)},
    "speed": {"h264": ("superfast", 26), "av1": (12, 32)},
    "balanced": {"h264": ("faster", 23), "av1": (10, 30)},
}
_DEFAULT_CODEC = "libsvtav1"
_DEFAULT_CRF = 30
_DEFAULT_PRESET: str | int = 12
_DEFAULT_GOP = 2


class DepthConfig(_Struct, frozen=True):
    """``[video.depth]``: how depth cameras are stored, with lerobot 0.6's defaults.

    Depth (metres, or millimetres for 16-bit images) becomes 12-bit codes: logarithmic between
    ``depth_min`` and ``depth_max`` (metres) with ``shift`` (``use_log``), else linear; the codes
    are encoded as ``gray12le`` with ``codec`` (HEVC, lossless by default).
    """

    codec: str = "libx265"
    crf: int = _DEFAULT_CRF
    gop: int = _DEFAULT_GOP
    lossless: bool = True
    depth_min: float = 0.01
    depth_max: float = 10.0
    shift: float = 3.5
    use_log: bool = True


class VideoConfig(_Struct, frozen=True):
    """``[video]``: encoder settings; defaults match lerobot's own recorder (AV1, crf 30, g 2)."""

    codec: str = _DEFAULT_CODEC
    crf: int = _DEFAULT_CRF
    preset: str | int = _DEFAULT_PRESET
    gop: int = _DEFAULT_GOP
    pix_fmt: str = "yuv420p"
    profile: str | None = None
    backend: Literal["auto", "pyav", "ffmpeg", "nvenc"] = "auto"
    depth: DepthConfig = DepthConfig()

    @property
    def codec_family(self) -> str:
        """``h264``, ``hevc`` or ``av1``, from the encoder name."""
        name = self.codec.lower()
        if "264" in name:
            return "h264"
        if "265" in name or "hevc" in name:
            return "hevc"
        return "av1"

    def resolved(self) -> VideoConfig:
        """Apply ``profile``: it only overrides the values still at their defaults."""
        if self.profile is None:
            return self
        family = "h264" if self.codec_family in ("h264", "hevc") else "av1"
        preset, crf = _PROFILES[self.profile][family]
        default_preset = _DEFAULT_PRESET if family == "av1" else "fast"
        return msgspec.structs.replace(
            self,
            profile=None,
            crf=crf if self.crf == _DEFAULT_CRF else self.crf,
            preset=preset if self.preset in (_DEFAULT_PRESET, default_preset) else self.preset,
        )


class AlignmentConfig(_Struct, frozen=True):
    """``[alignment]``: which clock aligns topics and how far a message may be from its frame.

    ``timeline`` names the timeline of a Rerun ``.rrd`` recording to align on (default: its
    ``log_time``); a sequence timeline needs ``timeline_rate_hz``. Other formats ignore both.
    """

    time_source: TimeSource = "header"
    tolerance_ms: float | None = None
    timeline: str | None = None
    timeline_rate_hz: float | None = None


class FlushingConfig(_Struct, frozen=True):
    """``[flushing]``: memory bounds of a conversion.

    ``incremental_video_encoding`` (the original's key) may only be ``true``: video is always
    encoded while frames are read.
    """

    max_frames_per_chunk: int = 1000
    max_memory_bytes: int = 2 * 1024**3
    incremental_video_encoding: bool = True
    queue_frames: int = 8


UPLOAD_PART_SIZE = 16 * 1024**2  # the multipart part size of every upload (roboflow_storage's default)


class StreamingConfig(_Struct, frozen=True):
    """``[streaming]``: the Rust original's S3 streaming-encoder settings, for its files.

    Roboflow always does what these keys asked for, its own way; a key is accepted when its value
    says what roboflow does (see :data:`_STREAMING_DOES`), and anything else is a
    :class:`ConfigError` naming the key. ``None``: not given.
    """

    enabled: bool | None = None
    use_coordinator: bool | None = None
    ring_buffer_size: int | None = None
    upload_part_size: int | None = None
    buffer_timeout_secs: float | None = None
    finalize_metadata_in_coordinator: bool | None = None


class SourceConfig(_Struct, frozen=True):
    """``[source]``: how recordings are read.

    ``salvage``: convert an interrupted recording (a truncated MCAP, an unindexed or truncated ROS1
    bag) up to its last complete message instead of refusing it (``roboflow convert --salvage``).
    """

    salvage: bool = False


class RoboflowConfig(_Struct, frozen=True):
    """A whole conversion config."""

    dataset: DatasetConfig
    mappings: tuple[Mapping, ...]
    video: VideoConfig = VideoConfig()
    alignment: AlignmentConfig = AlignmentConfig()
    flushing: FlushingConfig = FlushingConfig()
    streaming: StreamingConfig = StreamingConfig()
    source: SourceConfig = SourceConfig()
    annotation_file: str | None = None  # skill marks, one episode each (roboflow_core.annotation)

    def content_hash(self) -> str:
        """SHA-256 of the canonical encoding: equal configs hash equally, whatever the file's layout."""
        return hashlib.sha256(msgspec.json.encode(self, order="sorted")).hexdigest()


_PATH_RE = re.compile(r"`\$(?P<path>[^`]*)`")
_UNKNOWN_RE = re.compile(r"unknown field `([^`]+)`")
_MISSING_RE = re.compile(r"missing required field `([^`]+)`")


def _key_path(message: str) -> str | None:
    match = _PATH_RE.search(message)
    if match is None:
        return None
    return match.group("path").lstrip(".") or None


def _upgrade_legacy(raw: dict[str, Any]) -> dict[str, Any]:
    """Accept the original's older spellings: ``[[mapping]]`` and ``type``."""
    raw = dict(raw)
    dataset = raw.get("dataset")
    if isinstance(dataset, dict) and "env_type" in dataset:
        raise ConfigError(
            "env_type is not supported: a LeRobot dataset has no field for it (lerobot's env.type "
            "picks a simulator at evaluation time, not something a dataset records); remove it",
            key="dataset.env_type",
        )
    legacy = raw.pop("mapping", None)
    if legacy is not None:
        if "mappings" in raw:
            raise ConfigError("use either [[mappings]] or the older [[mapping]], not both", key="mapping")
        upgraded = []
        for item in legacy:
            item = dict(item)
            if "name" in item:
                item["feature"] = item.pop("name")
            encoding = str(item.pop("encoding", "")).lower()
            if "mapping_type" not in item and "type" not in item:
                is_image = any(s in encoding for s in ("image", "jpeg", "png", "rgb", "bgr", "mono"))
                item["mapping_type"] = "image" if is_image else "state"
            upgraded.append(item)
        raw["mappings"] = upgraded
    mappings = raw.get("mappings")
    if isinstance(mappings, list):
        fixed = []
        for item in mappings:
            if isinstance(item, dict) and "type" in item:
                item = dict(item)
                if "mapping_type" in item:
                    raise ConfigError("give mapping_type or its alias type, not both", key="mappings.type")
                item["mapping_type"] = item.pop("type")
            fixed.append(item)
        raw["mappings"] = fixed
    return raw


def _validate_dataset(dataset: DatasetConfig) -> None:
    if dataset.fps <= 0:
        raise ConfigError(f"fps must be a positive integer, got {dataset.fps}", key="dataset.fps")
    if not 0 < dataset.max_episode_seconds <= 10 * 365 * 86400:
        raise ConfigError(
            f"max_episode_seconds must be > 0 and at most ten years, got {dataset.max_episode_seconds}",
            key="dataset.max_episode_seconds",
        )


def _validate(config: RoboflowConfig) -> None:
    _validate_dataset(config.dataset)
    if not config.mappings:
        raise ConfigError("at least one [[mappings]] entry is needed", key="mappings")
    seen: dict[str, int] = {}
    for i, mapping in enumerate(config.mappings):
        where = f"mappings[{i}]"
        if mapping.topic in seen:
            raise ConfigError(
                f"topic {mapping.topic!r} is mapped twice (also in mappings[{seen[mapping.topic]}])",
                key=f"{where}.topic",
            )
        seen[mapping.topic] = i
        if mapping.mapping_type is MappingType.AUDIO:
            raise ConfigError("audio mappings are not supported yet", key=f"{where}.mapping_type")
        if mapping.tolerance_ms is not None and mapping.tolerance_ms <= 0:
            raise ConfigError("tolerance_ms must be > 0", key=f"{where}.tolerance_ms")
    _validate_camera_keys(config.mappings)
    images = [m.feature for m in config.mappings if m.is_image]
    if len(images) != len(set(images)):
        raise ConfigError("two image mappings write the same feature", key="mappings.feature")
    for i, mapping in enumerate(config.mappings):
        if not mapping.is_image and mapping.feature in images:
            raise ConfigError(
                f"feature {mapping.feature!r} is both a camera and a numeric feature",
                key=f"mappings[{i}].feature",
            )
    _validate_video(config.video)
    _validate_streaming(config.streaming)
    if not config.flushing.incremental_video_encoding:
        raise ConfigError(
            "incremental_video_encoding = false is not supported: video is always encoded while the "
            "frames are read (memory stays bounded); remove the key",
            key="flushing.incremental_video_encoding",
        )
    if config.flushing.queue_frames < 1:
        raise ConfigError("queue_frames must be >= 1", key="flushing.queue_frames")
    if config.alignment.tolerance_ms is not None and config.alignment.tolerance_ms <= 0:
        raise ConfigError("tolerance_ms must be > 0", key="alignment.tolerance_ms")
    rate = config.alignment.timeline_rate_hz
    if rate is not None and not rate > 0:
        raise ConfigError(f"timeline_rate_hz must be > 0, got {rate}", key="alignment.timeline_rate_hz")


def _validate_camera_keys(mappings: tuple[Mapping, ...]) -> None:
    """``camera_key`` names a camera's video directory (the original's meaning). LeRobot finds a
    camera's videos in the directory named after its feature key, so that is the only name it can
    have: the feature itself, or the camera's name in it (``cam_high`` for
    ``observation.images.cam_high``, as the original's own configs write it)."""
    for i, mapping in enumerate(mappings):
        if mapping.camera_key is None:
            continue
        key = f"mappings[{i}].camera_key"
        if not mapping.is_image:
            raise ConfigError("camera_key applies to image mappings only", key=key)
        if mapping.camera_key not in (mapping.feature, mapping.feature.removeprefix("observation.images.")):
            raise ConfigError(
                f"camera_key {mapping.camera_key!r} would name the camera's video directory, but LeRobot "
                f"reads a camera's videos from the directory of its feature key ({mapping.feature!r}); "
                f"to name the camera {mapping.camera_key!r}, set feature = "
                f"'observation.images.{mapping.camera_key}' and drop camera_key",
                key=key,
            )


# [streaming] key -> (the value that says what roboflow does, what roboflow does)
_STREAMING_DOES: dict[str, tuple[object, str]] = {
    "enabled": (True, "frames are always encoded as they are read and uploads are streamed"),
    "use_coordinator": (True, "cameras are always encoded in parallel, one encoder thread each"),
    "finalize_metadata_in_coordinator": (
        True,
        "dataset metadata is always written once, by the merge (the finalizer in distributed mode)",
    ),
    "upload_part_size": (UPLOAD_PART_SIZE, f"uploads always use {UPLOAD_PART_SIZE} byte parts"),
    "ring_buffer_size": (
        None,
        "each camera encoder has its own small bounded queue; [flushing] queue_frames bounds decoded frames",
    ),
    "buffer_timeout_secs": (None, "frames wait on bounded queues (back-pressure), without a timeout"),
}


def _validate_streaming(streaming: StreamingConfig) -> None:
    for name, (does, why) in _STREAMING_DOES.items():
        value = getattr(streaming, name)
        if value is None or value == does:
            continue
        fix = "remove it" if does is None else f"remove it or set {name} = {str(does).lower()}"
        raise ConfigError(f"{name} = {value!r} cannot be honoured: {why}; {fix}", key=f"streaming.{name}")


def _validate_video(video: VideoConfig) -> None:
    if not 0 <= video.crf <= 63:
        raise ConfigError(f"crf must be in 0..63, got {video.crf}", key="video.crf")
    if video.gop < 1:
        raise ConfigError(f"gop must be >= 1, got {video.gop}", key="video.gop")
    if video.profile is not None and video.profile not in _PROFILES:
        raise ConfigError(
            f"unknown profile {video.profile!r}; choose one of {', '.join(sorted(_PROFILES))}",
            key="video.profile",
        )
    depth = video.depth
    if depth.lossless and depth.codec not in ("libx265", "hevc"):
        raise ConfigError(
            f"lossless depth is libx265's (lerobot's default); set lossless = false for {depth.codec!r}",
            key="video.depth.lossless",
        )
    if not 0 <= depth.depth_min < depth.depth_max:
        raise ConfigError(
            f"depth_min must be >= 0 and below depth_max (metres), "
            f"got {depth.depth_min} and {depth.depth_max}",
            key="video.depth.depth_min",
        )
    if depth.use_log and depth.depth_min + depth.shift <= 0:
        raise ConfigError(
            f"logarithmic depth needs depth_min + shift > 0, got {depth.depth_min + depth.shift}",
            key="video.depth.shift",
        )


def parse_config(raw: dict[str, Any], *, source: str = "<config>") -> RoboflowConfig:
    """Validate an already-parsed TOML document.

    Args:
        raw: The TOML document as a dict.
        source: Where it came from, for error messages.

    Returns:
        The validated config, with the video profile applied.

    Raises:
        ConfigError: A key is unknown, missing or has a bad value; ``key`` names its path.
    """
    try:
        config = msgspec.convert(_upgrade_legacy(raw), RoboflowConfig)
    except msgspec.ValidationError as err:
        message = str(err)
        key = _key_path(message)
        reason = _PATH_RE.sub("", message).removesuffix(" - at ").strip()
        unknown = _UNKNOWN_RE.search(message)
        if unknown is not None:
            key = f"{key}.{unknown.group(1)}" if key else unknown.group(1)
            reason = f"unknown key {unknown.group(1)!r}: remove it or check its spelling"
        missing = _MISSING_RE.search(message)
        if missing is not None:
            key = f"{key}.{missing.group(1)}" if key else missing.group(1)
            reason = f"required key {missing.group(1)!r} is missing"
        raise ConfigError(f"{reason} (in {source})", key=key) from err
    except ConfigError as err:
        raise ConfigError(f"{err.reason} (in {source})", **err.context) from err
    try:
        _validate(config)
    except ConfigError as err:
        raise ConfigError(f"{err.reason} (in {source})", **err.context) from err
    return msgspec.structs.replace(config, video=config.video.resolved())


def load_config(path: str | Path) -> RoboflowConfig:
    """Read and validate a TOML config file.

    Raises:
        ConfigError: The file is missing, not TOML, or invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config: {err.strerror}", path=str(path)) from err
    return loads_config(text, source=str(path))


def loads_config(text: str, *, source: str = "<config>") -> RoboflowConfig:
    """Parse and validate TOML text (used for configs kept in a store)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"not valid TOML: {err}", path=source) from err
    return parse_config(raw, source=source)
