"""Distributed mode vs `roboflow convert --jobs N`: overhead and throughput against worker count.

The same recordings are converted twice into fresh datasets: once by `roboflow convert --jobs N`
(local process pool), once as a batch on the embedded SQLite store run by N `roboflow run --role
worker` processes plus one control pod (scanner, reaper, finalizer). Wall time is measured from
the command start to the finished dataset, process start-up included on both sides.

    uv run python bench/bench_distributed.py                      # 12 recordings, 320x240, 3 s each
    uv run python bench/bench_distributed.py --recordings 24 --workers 1 2 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROBOFLOW = str(Path(sys.executable).parent / "roboflow")
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
topic = "/joint_states"
feature = "observation.state"
[[mappings]]
topic = "/action"
feature = "action"
mapping_type = "action"
[video]
codec = "{codec}"
"""
# Short intervals: the figure should show the pipeline's overhead, not the default polling periods.
FAST_ENV = {
    "WORKER_POLL_INTERVAL_SECS": "0.2",
    "SCANNER_SCAN_INTERVAL_SECS": "0.2",
    "FINALIZER_POLL_INTERVAL_SECS": "0.2",
    "WORKER_HEARTBEAT_INTERVAL_SECS": "1",
}


def _run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout.strip()


def bench_convert(inputs: Path, config: Path, out: Path, jobs: int) -> float:
    started = time.perf_counter()
    _run(
        [
            ROBOFLOW,
            "convert",
            str(inputs / "*.mcap"),
            "-c",
            str(config),
            "-o",
            str(out),
            "-j",
            str(jobs),
            "--no-progress",
        ]
    )
    return time.perf_counter() - started


def bench_batch(inputs: Path, config: Path, out: Path, workers: int, work: Path) -> float:
    store = f"sqlite://{work / f'state-{workers}.db'}"
    env = {**os.environ, **FAST_ENV}
    started = time.perf_counter()
    batch = _run(
        [ROBOFLOW, "submit", str(inputs / "*.mcap"), "-c", str(config), "-o", str(out), "--store", store]
    )
    common = ["--store", store, "--exit-when-idle"]
    procs = [
        subprocess.Popen(
            [ROBOFLOW, "run", "--role", "worker", "--pod-id", f"w{i}", *common],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(workers)
    ]
    control = [
        ROBOFLOW,
        "run",
        "--role",
        "scanner",
        "--role",
        "reaper",
        "--role",
        "finalizer",
        "--pod-id",
        "control",
    ]
    procs.append(
        subprocess.Popen([*control, *common], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    )
    for proc in procs:
        proc.wait()
    elapsed = time.perf_counter() - started
    status = _run([ROBOFLOW, "batch", "get", batch, "--store", store])
    if "phase     complete" not in status:
        raise SystemExit(f"batch did not complete:\n{status}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recordings", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--codec", default="libx264")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    from roboflow_dataset.synth import write_recording

    with tempfile.TemporaryDirectory(prefix="roboflow-bench-dist-") as tmp:
        work = Path(tmp)
        inputs = work / "in"
        inputs.mkdir()
        frames = 0
        for i in range(args.recordings):
            rec = write_recording(
                inputs / f"rec_{i:03d}.mcap",
                "mcap",
                duration_s=args.seconds,
                width=args.width,
                height=args.height,
                seed=i,
            )
            frames += len(rec.messages["/cam_high/image_raw"])
        config = work / "config.toml"
        config.write_text(CONFIG.format(codec=args.codec))
        print(
            f"{args.recordings} recordings, {args.width}x{args.height}, {args.seconds:g} s each, "
            f"~{frames} camera frames, {args.codec}, {os.cpu_count()} CPUs"
        )
        print(f"{'workers':>7}  {'convert -j N':>13}  {'distributed':>12}  {'overhead':>9}  {'frames/s':>9}")
        for n in args.workers:
            local = bench_convert(inputs, config, work / f"local-{n}", n)
            dist = bench_batch(inputs, config, work / f"dist-{n}", n, work)
            overhead = 100 * (dist / local - 1)
            print(f"{n:>7}  {local:>11.2f} s  {dist:>10.2f} s  {overhead:>8.1f}%  {frames / dist:>9.1f}")


if __name__ == "__main__":
    main()
