"""Conversion benchmark: `roboflow convert` against the encode-only floor of the same frames.

The recording is shaped like a real arm's (issue 17): a raw ``rgb8`` 640x480 camera and a JPEG
``CompressedImage`` 640x480 wrist camera at 30 Hz, joint states at 100 Hz, actions at 50 Hz, in
a ROS2 MCAP bag, converted with lerobot's default video settings (libsvtav1, crf 30, gop 2,
preset 12). The floor is the same frames (the wrist camera's already decoded) in memory, encoded
with the same settings, cameras in parallel: what a conversion would cost if reading, decoding,
aligning and writing were free. Runs alternate (convert, floor, convert, ...) and the figures are
medians, so that a change in the machine's load hits both alike.

    uv run python bench/bench_convert.py                  # 30 s recording, 3 alternated runs
    uv run python bench/bench_convert.py --runs 5 --seconds 10
    uv run python bench/bench_convert.py --memory         # peak RSS: 1-minute vs 10-minute recording

``convert`` is the CLI in its own process, timed from outside (start-up included, as a user sees
it); its CPU seconds and peak RSS are that process's. Each floor runs in its own process too.
Children run with Python's bytecode cache on (as installed packages and the container image
have it), whatever ``PYTHONDONTWRITEBYTECODE`` says here: else every start compiles every module.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROBOFLOW = str(Path(sys.executable).parent / "roboflow")
RAW, JPEG = "cam_high", "cam_wrist"
CONFIG = """
[dataset]
name = "bench"
fps = 30
task = "bench"
[[mappings]]
topic = "/cam_high/image_raw"
feature = "observation.images.cam_high"
mapping_type = "image"
[[mappings]]
topic = "/cam_wrist/image_raw/compressed"
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


def bench_env() -> dict[str, str]:
    """The children's environment: with the bytecode cache (see the module's doc)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def warm_bytecode() -> None:
    """Import what the runs import once, so that the bytecode cache exists before any is timed."""
    modules = "roboflow_pipeline, roboflow_cli.main, roboflow_cli.distributed, roboflow_distributed.runner"
    subprocess.run([sys.executable, "-c", f"import {modules}"], check=True, env=bench_env())


def write_arm_recording(path: Path, seconds: float, width: int, height: int) -> None:
    """The issue's recording shape: raw + JPEG cameras at 30 Hz, joints 100 Hz, actions 50 Hz."""
    from roboflow_dataset.synth import write_recording

    write_recording(
        path,
        "ros2-mcap",
        duration_s=seconds,
        cameras=(RAW, JPEG),
        compressed=(JPEG,),
        width=width,
        height=height,
        camera_hz=30.0,
        joint_hz=100.0,
        action_hz=50.0,
    )


def run_convert(recording: Path, config: Path, work: Path, jobs: int = 1) -> dict[str, float]:
    """`roboflow convert` in a process of its own: wall seconds, CPU seconds and peak RSS (MB)."""
    out = Path(tempfile.mkdtemp(prefix="ds-", dir=work))
    argv = [ROBOFLOW, "convert", str(recording), "-c", str(config), "-o", str(out), "-j", str(jobs)]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=bench_env())
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"convert failed: {stderr}")
    info = json.loads((out / "meta" / "info.json").read_text())
    return {
        "seconds": seconds,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "frames": info["total_frames"],
    }


def _floor_child(args: argparse.Namespace) -> dict[str, float]:
    """In a child process: the recording's frames in memory, then only their encoding timed."""
    from bench_encode import encode_floor
    from roboflow_core import VideoConfig
    from roboflow_dataset._synth_content import jpeg_bytes
    from roboflow_dataset.synth import make_image
    from roboflow_media import decode_compressed_image

    n = int(args.seconds * 30)
    raw = [make_image(i, RAW, args.width, args.height) for i in range(n)]
    wrist = [
        decode_compressed_image(jpeg_bytes(make_image(i, JPEG, args.width, args.height)), "jpeg")
        for i in range(n)
    ]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    seconds = encode_floor([raw, wrist], VideoConfig(codec=args.codec))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    return {"seconds": seconds, "cpu_s": cpu, "frames": n}


def run_floor(args: argparse.Namespace) -> dict[str, float]:
    argv = [sys.executable, __file__, "--floor-child", "--codec", args.codec]
    argv += ["--seconds", str(args.seconds), "--width", str(args.width), "--height", str(args.height)]
    out = subprocess.run(
        argv, check=True, capture_output=True, text=True, cwd=Path(__file__).parent, env=bench_env()
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def bench_ratio(args: argparse.Namespace, work: Path) -> None:
    recording = work / "rec"
    write_arm_recording(recording, args.seconds, args.width, args.height)
    config = work / "bench.toml"
    config.write_text(CONFIG.format(codec=args.codec))
    converts: list[dict[str, float]] = []
    floors: list[dict[str, float]] = []
    for i in range(args.runs):
        converts.append(run_convert(recording, config, work))
        floors.append(run_floor(args))
        c, f = converts[-1], floors[-1]
        print(
            f"run {i + 1}: convert {c['seconds']:.2f} s ({c['cpu_s']:.1f} CPU-s, "
            f"{100 * c['cpu_s'] / c['seconds']:.0f}%, {c['peak_rss_mb']:.0f} MB), "
            f"floor {f['seconds']:.2f} s ({f['cpu_s']:.1f} CPU-s, {100 * f['cpu_s'] / f['seconds']:.0f}%), "
            f"ratio {c['seconds'] / f['seconds']:.2f}",
            flush=True,
        )
    conv_s, floor_s = _median(converts, "seconds"), _median(floors, "seconds")
    conv_cpu, floor_cpu = _median(converts, "cpu_s"), _median(floors, "cpu_s")
    ratios = [c["seconds"] / f["seconds"] for c, f in zip(converts, floors, strict=True)]
    print(
        f"recording: {args.seconds:.0f} s, raw {args.width}x{args.height} + JPEG camera at 30 Hz, "
        f"joints 100 Hz, actions 50 Hz (ROS2 MCAP), codec {args.codec}, {os.cpu_count()} CPUs"
    )
    print(f"frames:    {converts[0]['frames']:.0f} per camera")
    print(
        f"convert:   {conv_s:.2f} s median of {args.runs}, {conv_cpu:.1f} CPU-s "
        f"({100 * conv_cpu / conv_s:.0f}% CPU)"
    )
    print(
        f"floor:     {floor_s:.2f} s median of {args.runs}, {floor_cpu:.1f} CPU-s "
        f"({100 * floor_cpu / floor_s:.0f}% CPU)"
    )
    print(
        f"ratio:     {conv_s / floor_s:.2f} x the encode-only floor (medians; median of per-run ratios "
        f"{statistics.median(ratios):.2f}; target <= 1.15)"
    )
    print(
        f"cpu:       {conv_cpu / floor_cpu:.2f} x the floor's CPU seconds ({conv_cpu - floor_cpu:+.1f} CPU-s)"
    )
    print(f"peak RSS:  {_median(converts, 'peak_rss_mb'):.0f} MB (target < 500)")


def bench_memory(args: argparse.Namespace, work: Path) -> None:
    """Peak RSS of a 1-minute and a 10-minute recording of the same shape (smaller frames by
    default, so the 10-minute one takes minutes, not a quarter of an hour)."""
    config = work / "bench.toml"
    config.write_text(CONFIG.format(codec=args.codec))
    rss = {}
    for minutes in (1, 10):
        recording = work / f"rec-{minutes}min"
        write_arm_recording(recording, 60.0 * minutes, args.memory_width, args.memory_height)
        result = run_convert(recording, config, work)
        rss[minutes] = result["peak_rss_mb"]
        print(
            f"{minutes:>2}-minute recording {args.memory_width}x{args.memory_height}: {result['frames']:.0f} "
            f"frames, {result['seconds']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB",
            flush=True,
        )
        for path in recording.iterdir():
            path.unlink()
    print(f"10 min / 1 min peak RSS: {rss[10] / rss[1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--codec", default="libsvtav1")
    parser.add_argument("--runs", type=int, default=3, help="alternated convert/floor pairs (medians)")
    parser.add_argument("--memory", action="store_true", help="peak RSS of 1- and 10-minute recordings")
    parser.add_argument("--memory-width", type=int, default=320)
    parser.add_argument("--memory-height", type=int, default=240)
    parser.add_argument("--floor-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        print(json.dumps(_floor_child(args)))
        return
    warm_bytecode()
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        if args.memory:
            bench_memory(args, Path(tmp))
        else:
            bench_ratio(args, Path(tmp))


if __name__ == "__main__":
    main()
