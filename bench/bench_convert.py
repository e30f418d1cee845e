"""Conversion benchmark: frames/s, input MB/s, peak RSS, and the ratio to the encode-only floor.

The floor is the same frames already in memory, encoded with the same settings, cameras in
parallel: what a conversion would cost if reading, decoding, aligning and writing were free.

    uv run python bench/bench_convert.py                 # 640x480, two cameras, 10 s at 30 fps
    uv run python bench/bench_convert.py --seconds 20 --codec libx264
    uv run python bench/bench_convert.py --memory        # peak RSS of a 1-minute vs a 10-minute recording

Each measurement runs in its own process so that peak RSS belongs to that run alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from roboflow_core import loads_config

CONFIG = """
[dataset]
name = "bench"
fps = {fps}
[[mappings]]
topic = "/cam_high/image_raw"
feature = "observation.images.cam_high"
mapping_type = "image"
[[mappings]]
topic = "/cam_wrist/image_raw"
feature = "observation.images.cam_wrist"
mapping_type = "image"
[[mappings]]
topic = "/joint_states"
feature = "observation.state"
[[mappings]]
topic = "/action"
feature = "action"
mapping_type = "action"
[video]
codec = "{codec}"
"""


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run_convert(args: argparse.Namespace) -> dict[str, float]:
    from roboflow_dataset.synth import write_recording
    from roboflow_pipeline import convert

    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(tmp) / "rec.mcap"
        write_recording(
            rec,
            "mcap",
            duration_s=args.seconds,
            cameras=("cam_high", "cam_wrist"),
            width=args.width,
            height=args.height,
            camera_hz=float(args.fps),
        )
        config = loads_config(CONFIG.format(fps=args.fps, codec=args.codec))
        start, cpu = time.perf_counter(), _cpu_s()
        summary = convert([rec], config, Path(tmp) / "ds")
        seconds, cpu = time.perf_counter() - start, _cpu_s() - cpu
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "frames": summary.frames,
        "input_mb": summary.input_bytes / 2**20,
        "peak_rss_mb": _peak_rss_mb(),
        "encoders": ",".join(sorted(summary.encoders)),  # type: ignore[dict-item]
    }


def _run_floor(args: argparse.Namespace) -> dict[str, float]:
    from bench_encode import encode_floor
    from roboflow_core import VideoConfig
    from roboflow_dataset.synth import make_image

    n = int(args.seconds * args.fps) + 1
    frames = [make_image(i, "cam_high", args.width, args.height) for i in range(n)]
    cpu = _cpu_s()
    seconds = encode_floor(frames, 2, VideoConfig(codec=args.codec))
    return {"seconds": seconds, "cpu_s": _cpu_s() - cpu, "frames": n, "peak_rss_mb": _peak_rss_mb()}


def _child(mode: str, args: argparse.Namespace, **override: float) -> dict[str, float]:
    argv = [sys.executable, __file__, "--child", mode, "--codec", args.codec]
    values = {
        "seconds": args.seconds,
        "width": args.width,
        "height": args.height,
        "fps": args.fps,
        **override,
    }
    for key, value in values.items():
        argv += [f"--{key}", str(value)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, cwd=Path(__file__).parent)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--codec", default="libsvtav1")
    parser.add_argument(
        "--memory", action="store_true", help="compare peak RSS of 1- and 10-minute recordings"
    )
    parser.add_argument("--child", choices=["convert", "floor"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = _run_convert(args) if args.child == "convert" else _run_floor(args)
        print(json.dumps(result))
        return
    if args.memory:
        for minutes in (1, 10):
            r = _child("convert", args, seconds=60.0 * minutes, width=160, height=120)
            print(
                f"{minutes:>2}-minute recording 160x120 x2 cameras: {r['frames']:.0f} frames, "
                f"{r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB"
            )
        return
    conv = _child("convert", args)
    floor = _child("floor", args)
    frames = conv["frames"]
    print(
        f"recording: {args.width}x{args.height}, 2 cameras, {args.seconds:.0f} s at {args.fps} fps, "
        f"codec {args.codec} ({conv['encoders']})"
    )
    secs = conv["seconds"]
    print(
        f"convert:   {frames:.0f} frames in {secs:.2f} s = {frames / secs:.1f} frames/s "
        f"({2 * frames / secs:.1f} camera-frames/s), input {conv['input_mb'] / secs:.1f} MB/s"
    )
    print(f"peak RSS:  {conv['peak_rss_mb']:.0f} MB")
    print(
        f"floor:     {floor['frames']:.0f} frames x2 cameras encoded from memory in {floor['seconds']:.2f} s"
    )
    print(f"ratio:     {conv['seconds'] / floor['seconds']:.2f} x the encode-only floor (target <= 1.3)")
    cpu_ratio = conv["cpu_s"] / floor["cpu_s"]
    print(f"cpu:       convert {conv['cpu_s']:.2f} s, floor {floor['cpu_s']:.2f} s ({cpu_ratio:.2f} x)")


if __name__ == "__main__":
    main()
