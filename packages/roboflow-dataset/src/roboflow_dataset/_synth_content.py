"""Deterministic content of synthetic recordings: marker images and joint trajectories."""

from __future__ import annotations

import functools
import io
import zlib

import numpy as np
from PIL import Image as PILImage

__all__ = [
    "JOINT_NAMES",
    "MARKER_BITS",
    "action_at",
    "joint_state_at",
    "jpeg_bytes",
    "make_depth",
    "make_image",
    "read_marker",
]

MARKER_BITS = 12
"""Bars in the top half of each image: the frame index, MSB first (so at most 4096 frames)."""

JOINT_NAMES = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
_FREQ_HZ = np.array([0.25, 0.4, 0.55, 0.7, 0.85, 1.0])
_PHASE = np.arange(len(JOINT_NAMES)) * 0.5
_AMPLITUDE = 0.5 + 0.1 * np.arange(len(JOINT_NAMES))
_ACTION_LEAD_S = 0.1


def joint_state_at(t_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joint position, velocity and effort (float64, 6 joints) at nominal time ``t_s``."""
    angle = 2 * np.pi * _FREQ_HZ * t_s + _PHASE
    position = _AMPLITUDE * np.sin(angle)
    velocity = _AMPLITUDE * 2 * np.pi * _FREQ_HZ * np.cos(angle)
    effort = 0.2 * position - 0.05 * velocity
    return position, velocity, effort


def action_at(t_s: float) -> np.ndarray:
    """The commanded joint positions (float32, 6 values) at nominal time ``t_s``: the state 0.1 s ahead."""
    return joint_state_at(t_s + _ACTION_LEAD_S)[0].astype(np.float32)


@functools.cache
def _bar_edges(width: int) -> np.ndarray:
    return np.linspace(0, width, MARKER_BITS + 1).round().astype(np.intp)


@functools.lru_cache(maxsize=32)
def _gradient(camera: str, width: int, rows: int) -> np.ndarray:
    crc = zlib.crc32(camera.encode())
    colour = np.array([crc & 0xFF, (crc >> 8) & 0xFF, (crc >> 16) & 0xFF], dtype=np.float32) * 0.75 + 64
    ramp_x = np.linspace(0.3, 1.0, width, dtype=np.float32)
    ramp_y = np.linspace(1.0, 0.5, rows, dtype=np.float32)
    gradient = (ramp_y[:, None, None] * ramp_x[None, :, None] * colour).clip(0, 255).astype(np.uint8)
    gradient.flags.writeable = False
    return gradient


def make_image(index: int, camera: str, width: int, height: int, drift: float = 0.0) -> np.ndarray:
    """The RGB image (``(height, width, 3)`` uint8) of frame ``index`` of ``camera``.

    The top half has :data:`MARKER_BITS` vertical bars, 255 where the bit of
    ``index % 2**MARKER_BITS`` (MSB first) is set, else 0 (long recordings wrap around); the
    bottom half is a per-camera colour gradient. ``drift`` (0-1, how far through the recording
    the frame is) moves its colour: red fades to a quarter while blue grows from a quarter.

    Raises:
        ValueError: ``index`` is negative, or the image is too small for the marker.
    """
    if index < 0:
        raise ValueError(f"frame index {index} is negative")
    index %= 2**MARKER_BITS
    if width < MARKER_BITS or height < 2:
        raise ValueError(f"image {width}x{height} is too small for {MARKER_BITS} marker bars")
    top = height // 2
    row = np.zeros(width, dtype=np.uint8)
    edges = _bar_edges(width)
    for bit in range(MARKER_BITS):
        if index >> (MARKER_BITS - 1 - bit) & 1:
            row[edges[bit] : edges[bit + 1]] = 255
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:top] = row[None, :, None]
    image[top:] = _gradient(camera, width, height - top)
    if drift:
        bottom = image[top:].astype(np.float32)
        bottom[..., 0] *= 1.0 - 0.75 * drift
        bottom[..., 2] *= 0.25 + 0.75 * drift
        image[top:] = bottom.round().astype(np.uint8)
    return image


def make_depth(index: int, camera: str, width: int, height: int) -> np.ndarray:
    """The depth image (``(height, width)`` uint16 millimetres) of frame ``index`` of ``camera``.

    0.3-9.3 m, different at every pixel and frame: ramps along x (3 m) and y (2 m) plus 37 mm per
    frame (wrapping every 101 frames) plus a per-camera offset; every 17th pixel along the
    diagonals is 0 (no measurement).
    """
    y, x = np.mgrid[0:height, 0:width]
    offset = zlib.crc32(camera.encode()) % 100
    depth = 300 + x * 3000 // width + y * 2000 // height + 37 * (index % 101) + offset
    depth[(x + y + index) % 17 == 0] = 0
    millimetres: np.ndarray = depth.astype(np.uint16)
    return millimetres


def read_marker(frame: np.ndarray) -> int:
    """Read the frame index back from an image made by :func:`make_image`, even after lossy coding.

    Args:
        frame: ``(H, W, C)`` or ``(H, W)`` image; channels are averaged.

    Returns:
        The frame index.
    """
    gray = np.asarray(frame, dtype=np.float32)
    if gray.ndim == 3:
        gray = gray.mean(axis=2)
    height, width = gray.shape
    band = gray[height // 8 : max(3 * height // 8, height // 8 + 1)]  # middle of the top half
    edges = _bar_edges(width)
    value = 0
    for bit in range(MARKER_BITS):
        lo, hi = int(edges[bit]), int(edges[bit + 1])
        margin = (hi - lo) // 4  # skip the bar edges, where compression rings
        value = value << 1 | int(band[:, lo + margin : hi - margin].mean() >= 128)
    return value


def jpeg_bytes(pixels: np.ndarray) -> bytes:
    """The JPEG (quality 95) of a synthetic frame, as every format stores it."""
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()
