"""Read videos back with PyAV: stream facts (``probe_video``) and decoded frames (``iter_video_frames``)."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import msgspec
import numpy as np
from numpy.typing import NDArray

from roboflow_core.errors import MediaError
from roboflow_media._settings import DEPTH_PIX_FMT

__all__ = ["VideoProbe", "iter_gray16_frames", "iter_video_frames", "probe_video"]


class VideoProbe(msgspec.Struct, frozen=True, kw_only=True):
    """Facts about the first video stream of a file."""

    codec: str
    """Canonical codec name (``av1``, ``h264``), not the decoder's."""
    width: int
    height: int
    fps: float
    """Average frame rate."""
    frames: int
    """Counted by demuxing packets, not read from the header."""
    duration_s: float
    """End of the last frame (its pts plus its duration)."""
    first_pts_s: float
    pix_fmt: str
    pts_s: tuple[float, ...]
    """Presentation time of every frame, sorted."""


def probe_video(path: str | Path) -> VideoProbe:
    """Demux a video (no decoding) and describe its first video stream.

    Raises:
        MediaError: The file is missing, unreadable or has no video stream.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError("the file has no video stream", path=str(path))
            stream = container.streams.video[0]
            time_base = stream.time_base or Fraction(1, 1)
            ends: list[tuple[int, int]] = [
                (packet.pts, packet.duration or 0)
                for packet in container.demux(stream)
                if packet.size and packet.pts is not None
            ]
            codec = stream.codec_context
            rate = stream.average_rate or stream.guessed_rate or 0
            pix_fmt = codec.format.name if codec.format is not None else ""
            name, width, height = codec.codec.canonical_name, codec.width, codec.height
    except (av.FFmpegError, OSError) as err:
        raise MediaError(f"cannot read video: {err}", path=str(path)) from err
    if not ends:
        raise MediaError("the video stream has no frames", path=str(path))
    # ticks * numerator / denominator: int true division rounds correctly, so each value is the
    # float of the exact Fraction (``float(ticks * time_base)``) without Fraction arithmetic
    num, den = time_base.numerator, time_base.denominator
    pts = [p * num / den for p in sorted(p for p, _ in ends)]
    end = max(p + d for p, d in ends)
    return VideoProbe(
        codec=name,
        width=width,
        height=height,
        fps=float(rate),
        frames=len(ends),
        duration_s=end * num / den,
        first_pts_s=pts[0],
        pix_fmt=pix_fmt,
        pts_s=tuple(pts),
    )


def iter_video_frames(path: str | Path) -> Iterator[NDArray[np.uint8]]:
    """Decode the first video stream, yielding ``(H, W, 3)`` RGB ``uint8`` frames in order.

    Raises:
        MediaError: The file cannot be opened or decoded.
    """
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                yield np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
    except (av.FFmpegError, OSError) as err:
        raise MediaError(f"cannot decode video: {err}", path=str(path)) from err


def iter_gray16_frames(path: str | Path, pix_fmt: str = DEPTH_PIX_FMT) -> Iterator[NDArray[np.uint16]]:
    """Decode the first video stream, yielding ``(H, W, 1)`` ``uint16`` samples (e.g. 12-bit depth codes).

    Args:
        path: The video.
        pix_fmt: The 16-bit-container gray format to convert each frame to.

    Raises:
        MediaError: The file cannot be opened or decoded.
    """
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                yield np.asarray(frame.to_ndarray(format=pix_fmt), dtype=np.uint16)[..., np.newaxis]
    except (av.FFmpegError, OSError) as err:
        raise MediaError(f"cannot decode video: {err}", path=str(path)) from err
