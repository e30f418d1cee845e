"""Read + decode throughput of every source backend on a synthetic 640x480 rgb8 recording.

Usage: ``uv run python bench/bench_read.py [--frames 300] [--repeat 3]``. Each pass iterates every
message, reads ``header_stamp_ns`` and calls ``decode()``; the best of ``--repeat`` passes is printed
(page cache warm).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from roboflow_dataset.sources import open_source
from roboflow_dataset.synth import SynthFormat, write_recording

FORMATS: tuple[SynthFormat, ...] = ("mcap", "ros1", "ros2-db3", "ros2-mcap")


def _read_once(path: Path) -> tuple[float, int, int]:
    start = time.perf_counter()
    messages = size = 0
    with open_source(path) as source:
        for message in source.messages():
            _ = message.header_stamp_ns
            message.decode()
            messages += 1
            size += len(message.data)
    return time.perf_counter() - start, messages, size


def main() -> None:
    """Write one recording per format, then time reading it back."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="camera frames (30 fps)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per format (best is kept)")
    args = parser.parse_args()
    print(f"{'format':<10} {'write s':>8} {'read s':>8} {'MB/s':>8} {'msgs/s':>10} {'messages':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FORMATS:
            start = time.perf_counter()
            info = write_recording(Path(tmp) / fmt, fmt, duration_s=args.frames / 30.0, width=640, height=480)
            written = time.perf_counter() - start
            seconds, messages, size = min(_read_once(info.path) for _ in range(args.repeat))
            print(
                f"{fmt:<10} {written:8.2f} {seconds:8.3f} {size / seconds / 1e6:8.0f} "
                f"{messages / seconds:10.0f} {messages:9d}"
            )


if __name__ == "__main__":
    main()
