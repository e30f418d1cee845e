"""Encode-only floor: how fast frames already in memory become video, per backend and codec.

The conversion benchmark compares against :func:`encode_floor`. Run with
``uv run python bench/bench_encode.py [--frames 300] [--width 640 --height 480]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from roboflow_core.config import VideoConfig
from roboflow_media import BackgroundEncoder, cores_per_encoder, open_encoder

FPS = 30


def make_frames(count: int, width: int = 640, height: int = 480, seed: int = 0) -> list[NDArray[np.uint8]]:
    """Moving gradients with a little noise, so the encoder has real work to do."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    noise = rng.integers(0, 12, (height, width, 3), dtype=np.uint8)
    return [
        (np.stack([x + 3 * i, y + 2 * i, (x + y) // 2 + i], axis=-1) % 256).astype(np.uint8) + noise
        for i in range(count)
    ]


def encode_floor(cameras: Sequence[Sequence[NDArray[np.uint8]]], config: VideoConfig) -> float:
    """Seconds to encode each camera's frames, cameras in parallel (one BackgroundEncoder each).

    Args:
        cameras: Each camera's ``(H, W, 3)`` RGB frames (all of a camera the same size), the
            same number for every camera.
        config: Encoder settings (codec, crf, preset, gop, backend).

    Returns:
        Wall-clock seconds from opening the encoders to the last ``close``.
    """
    with tempfile.TemporaryDirectory(prefix="bench-encode-") as tmp:
        start = time.perf_counter()
        encoders = [
            BackgroundEncoder(
                open_encoder(
                    Path(tmp) / f"cam{i}.mp4",
                    width=frames[0].shape[1],
                    height=frames[0].shape[0],
                    fps=FPS,
                    config=config,
                    cores=cores_per_encoder(len(cameras)),  # as a conversion's cameras share the CPUs
                )
            )
            for i, frames in enumerate(cameras)
        ]
        for row in zip(*cameras, strict=True):
            for encoder, frame in zip(encoders, row, strict=True):
                encoder.encode(frame)
        for encoder in encoders:
            encoder.close()
        return time.perf_counter() - start


def main() -> None:
    """Print frames/s (all cameras together) for each backend, codec and camera count."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--backends", default="pyav,ffmpeg")
    args = parser.parse_args()
    frames = make_frames(args.frames, args.width, args.height)
    print(f"{args.frames} frames {args.width}x{args.height}, crf 30, g 2")
    print(f"{'backend':8} {'codec':10} {'cameras':>7} {'seconds':>8} {'frames/s':>9}")
    for backend in args.backends.split(","):
        for codec in ("libsvtav1", "libx264"):
            config = VideoConfig(codec=codec, backend=backend)
            for n_cameras in (1, 2):
                seconds = encode_floor([frames] * n_cameras, config)
                rate = n_cameras * len(frames) / seconds
                print(f"{backend:8} {codec:10} {n_cameras:7d} {seconds:8.2f} {rate:9.0f}")


if __name__ == "__main__":
    main()
