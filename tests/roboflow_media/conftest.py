"""Shared frames and encoder parameters for the media tests."""

from __future__ import annotations

import numpy as np
import pytest

# Debian's system SVT-AV1 (ffmpeg backend) rejects sides under 64 px, so the videos are 128x96.
WIDTH, HEIGHT, FPS = 128, 96, 10
BACKEND_CODECS = [
    pytest.param(backend, codec, canonical, id=f"{backend}-{canonical}")
    for backend in ("pyav", "ffmpeg")
    for codec, canonical in (("libsvtav1", "av1"), ("libx264", "h264"))
]


def make_frames(count: int, start: int = 0) -> list[np.ndarray]:
    """Frames with distinct, smooth content: frame ``i`` has a brightness ramp and a bar at column i."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames = []
    for i in range(start, start + count):
        frame = np.stack([x + 8 * i, y * 2, np.full_like(x, (i * 37) % 200)], axis=-1) % 256
        frame[:, (i * 9) % (WIDTH - 8) :][:, :8] = 255
        frames.append(frame.astype(np.uint8))
    return frames


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute pixel difference."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def assert_frames_match(decoded: list[np.ndarray], expected: list[np.ndarray], tolerance: float = 10) -> None:
    """Same count, each decoded frame close to its input and closer to it than to any other."""
    assert len(decoded) == len(expected)
    for i, frame in enumerate(decoded):
        errors = [mean_abs_error(frame, other) for other in expected]
        assert errors[i] < tolerance, f"frame {i}: mean abs error {errors[i]:.1f}"
        assert int(np.argmin(errors)) == i, f"frame {i} looks like input {int(np.argmin(errors))}"
