"""What every encoder backend needs to know, derived once from a :class:`VideoConfig`."""

from __future__ import annotations

from typing import NamedTuple

import av
import numpy as np

from roboflow_core.config import DepthConfig, VideoConfig
from roboflow_core.errors import MediaError

__all__ = ["DEPTH_PIX_FMT", "EncodeSettings", "depth_extra_options", "resolve_settings"]

# x264/x265 take named presets; an SVT-AV1 style number (the default 12) maps to this one.
_X26X_DEFAULT_PRESET = "fast"
DEPTH_PIX_FMT = "gray12le"
"""Depth cameras are 12-bit codes (lerobot 0.6's depth format), encoded as 12-bit gray."""
_X265_QUIET = "log-level=error"


class EncodeSettings(NamedTuple):
    """Encoder settings shared by the PyAV and ffmpeg-CLI backends.

    ``options`` are FFmpeg AVOption names (``preset``, ``crf``, ``g``, ``bf``), valid both as
    PyAV stream options and as ffmpeg command-line flags.
    """

    codec: str
    canonical: str
    pix_fmt: str
    input_format: str
    channels: int
    dtype: np.dtype[np.generic]
    gop: int
    options: dict[str, str]


def resolve_settings(
    config: VideoConfig, *, width: int, height: int, channels: int, depth: bool, cores: int | None = None
) -> EncodeSettings:
    """Check the frame geometry against the codec and build the backend-neutral settings.

    Args:
        config: The ``[video]`` config.
        width: Frame width.
        height: Frame height.
        channels: 3 for RGB input, 1 for grayscale input (depth implies 1).
        depth: Encode ``uint16`` 12-bit depth codes with ``config.depth`` as ``gray12le``.
        cores: CPU cores an SVT-AV1 encoder aims to use (its ``lp``); ``None``: all.

    Raises:
        MediaError: Unknown codec, bad channel count, or odd sizes with a 4:2:0 pixel format.
    """
    channels = 1 if depth else channels
    if channels not in (1, 3):
        raise MediaError(f"encoder input must have 3 (RGB) or 1 (gray/depth) channels, got {channels}")
    codec = config.depth.codec if depth else config.codec
    pix_fmt = DEPTH_PIX_FMT if depth else config.pix_fmt
    try:
        encoder = av.codec.Codec(codec, "w")
    except (av.FFmpegError, ValueError) as err:
        if depth:
            raise MediaError(
                f"depth cameras are encoded with [video.depth] codec {codec!r}, which this PyAV/FFmpeg build "
                f"lacks ({err}); lerobot's depth format needs a {DEPTH_PIX_FMT} encoder such as libx265"
            ) from err
        raise MediaError(f"unknown video encoder {codec!r}: {err}") from err
    canonical = encoder.canonical_name
    if depth and pix_fmt not in {f.name for f in encoder.video_formats or ()}:
        raise MediaError(
            f"[video.depth] codec {codec!r} cannot encode {DEPTH_PIX_FMT} (12-bit depth codes); use libx265"
        )
    if ("420" in pix_fmt or pix_fmt in ("nv12", "p010le")) and (width % 2 or height % 2):
        raise MediaError(
            f"{pix_fmt} needs an even width and height, got {width}x{height}: crop or resize the camera"
        )
    if width <= 0 or height <= 0:
        raise MediaError(f"frame size must be positive, got {width}x{height}")
    options = {"g": str(config.gop)}
    if depth:
        options = {"g": str(config.depth.gop), "crf": str(config.depth.crf), "bf": "0"}
        options |= depth_extra_options(config.depth)
        if canonical == "hevc":  # x265 prints its settings to stderr unless told otherwise
            options["x265-params"] = ":".join(filter(None, [options.get("x265-params"), _X265_QUIET]))
    elif canonical in ("h264", "hevc"):
        preset = config.preset if isinstance(config.preset, str) else _X26X_DEFAULT_PRESET
        options |= {"preset": preset, "crf": str(config.crf), "bf": "0"}
    elif codec == "libsvtav1":
        options |= {"preset": str(config.preset), "crf": str(config.crf)}
        if cores is not None:
            if cores < 1:
                raise MediaError(f"an encoder needs at least 1 core, got {cores}")
            options["svtav1-params"] = f"lp={cores}"
    dtype: np.dtype[np.generic]
    if depth:
        input_format, dtype = DEPTH_PIX_FMT, np.dtype(np.uint16)
    else:
        input_format, dtype = ("rgb24" if channels == 3 else "gray"), np.dtype(np.uint8)
    gop = config.depth.gop if depth else config.gop
    return EncodeSettings(codec, canonical, pix_fmt, input_format, channels, dtype, gop, options)


def depth_extra_options(depth: DepthConfig) -> dict[str, str]:
    """Codec options of a depth encoder beyond g and crf, as lerobot records them (``video.extra_options``).

    Lossless libx265 (lerobot's default) is ``x265-params=lossless=1``.
    """
    return {"x265-params": "lossless=1"} if depth.lossless else {}
