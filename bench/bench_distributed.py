"""Distributed mode vs `roboflow convert -j N` on many small recordings: seconds per job.

Issue 17's case by default: 100 one-second recordings shaped like a real arm's (a raw 640x480
camera and a JPEG wrist camera at 30 Hz, joint states at 100 Hz, actions at 50 Hz; ROS2 MCAP
files), lerobot's default video settings (libsvtav1, crf 30, gop 2). The same recordings are
converted into fresh datasets: by `roboflow convert -j N` (local process pool, start-up included),
and as a batch on the embedded SQLite store run by N `roboflow run --role worker` processes plus
one control pod (scanner, reaper, finalizer). "warm" times submit -> finished dataset with the
pods already running (as in a cluster); "cold" starts the pods with the batch, so it pays their
process start-up, like `convert` does. The encode-only floor is the recordings' frames in memory,
encoded recording by recording with the same settings (cameras in parallel): what `convert -j N`
spends beyond it, per recording, is its own overhead.

    uv run python bench/bench_distributed.py                      # 100 x 1 s recordings, 2 workers
    uv run python bench/bench_distributed.py --recordings 20 --workers 1 2
    uv run python bench/bench_distributed.py --s3                 # inputs in a moto bucket on loopback

With ``--s3`` the recordings are read from a bucket on a local S3 server (moto) and every run gets
a fresh, empty download buffer, so every run downloads each recording: the figures then include
how well workers hide downloads (a worker claims its next unit ahead and downloads it while it
converts the current one).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_convert import CONFIG, JPEG, RAW, bench_env, warm_bytecode

ROBOFLOW = str(Path(sys.executable).parent / "roboflow")
# Short intervals: the figure should show the pipeline's overhead, not the default polling periods.
FAST_ENV = {
    "WORKER_POLL_INTERVAL_SECS": "0.2",
    "SCANNER_SCAN_INTERVAL_SECS": "0.2",
    "FINALIZER_POLL_INTERVAL_SECS": "0.2",
    "WORKER_HEARTBEAT_INTERVAL_SECS": "1",
}


def _env(work: Path) -> dict[str, str]:
    """The environment of one run: a fresh download buffer, so inputs in a store are downloaded."""
    return {**bench_env(), "ROBOFLOW_BUFFER_DIR": tempfile.mkdtemp(prefix="buffer-", dir=work)}


def _run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=cwd).stdout.strip()


def bench_convert(inputs: str, config: Path, out: Path, jobs: int, work: Path) -> float:
    env = _env(work)
    started = time.perf_counter()
    _run(
        [
            ROBOFLOW,
            "convert",
            inputs,
            "-c",
            str(config),
            "-o",
            str(out),
            "-j",
            str(jobs),
            "--no-progress",
        ],
        env,
    )
    return time.perf_counter() - started


def _spawn(workers: int, store: str, env: dict[str, str], idle_exit: bool) -> list[subprocess.Popen[bytes]]:
    extra = ["--store", store, *(["--exit-when-idle"] if idle_exit else [])]
    control = ["run", "--role", "scanner", "--role", "reaper", "--role", "finalizer", "--pod-id", "control"]
    commands = [[ROBOFLOW, "run", "--role", "worker", "--pod-id", f"w{i}", *extra] for i in range(workers)]
    commands.append([ROBOFLOW, *control, *extra])
    return [
        subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in commands
    ]


def _wait_complete(store_url: str, batch: str) -> None:
    from roboflow_distributed.batches import get_batch
    from roboflow_distributed.store import open_store

    store = open_store(store_url)
    try:
        while not (phase := get_batch(store, batch).status.record.phase).terminal:
            time.sleep(0.05)
    finally:
        store.close()
    if phase != "complete":
        raise SystemExit(f"batch {batch} ended {phase}")


def _wait_pods(store_url: str, n: int) -> None:
    from roboflow_distributed import keys
    from roboflow_distributed.store import open_store

    store = open_store(store_url)
    try:
        while len(store.scan(keys.HEARTBEATS)) < n:
            time.sleep(0.05)
    finally:
        store.close()


def bench_batch(inputs: str, config: Path, out: Path, workers: int, work: Path, *, warm: bool) -> float:
    """Seconds from submit to the finished dataset; ``warm``: the pods run already (a cluster)."""
    store = f"sqlite://{work / f'state-{workers}-{warm}.db'}"
    env = {**_env(work), **FAST_ENV}
    procs = _spawn(workers, store, env, idle_exit=not warm) if warm else []
    if warm:
        _wait_pods(store, workers + 1)
    started = time.perf_counter()
    batch = _run([ROBOFLOW, "submit", inputs, "-c", str(config), "-o", str(out), "--store", store], env)
    if not warm:
        procs = _spawn(workers, store, env, idle_exit=True)
    _wait_complete(store, batch)
    elapsed = time.perf_counter() - started
    for proc in procs:
        if warm:
            proc.send_signal(signal.SIGTERM)
        proc.wait()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recordings", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--codec", default="libsvtav1")
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--runs", type=int, default=1, help="alternated runs of each (medians)")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-pod runs")
    parser.add_argument("--s3", action="store_true", help="read the recordings from a local S3 server")
    parser.add_argument("--floor-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        print(_floor(args))
        return

    from roboflow_dataset.synth import write_recording

    warm_bytecode()
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
                cameras=(RAW, JPEG),
                compressed=(JPEG,),
                width=args.width,
                height=args.height,
                camera_hz=30.0,
                joint_hz=100.0,
                action_hz=50.0,
                seed=i,
            )
            frames += len(rec.messages[f"/{RAW}/image_raw"])
        config = work / "config.toml"
        config.write_text(CONFIG.format(codec=args.codec))
        source = str(inputs / "*.mcap")
        server = None
        if args.s3:
            source, server = _upload(inputs)
        n = args.recordings
        print(
            f"{n} recordings of {args.seconds:g} s: raw {args.width}x{args.height} + JPEG camera at 30 Hz, "
            f"joints 100 Hz, actions 50 Hz; {frames} frames per camera, {args.codec}, {os.cpu_count()} CPUs"
            + (", read from s3:// (moto on loopback)" if args.s3 else "")
        )
        floor = float(
            _run(
                [sys.executable, __file__, "--floor-child", *_floor_argv(args)],
                env=bench_env(),
                cwd=Path(__file__).parent,
            )
        )
        print(f"encode-only floor: {floor:.2f} s ({floor / n:.3f} s per recording)")
        print("warm: pods already running (a cluster); cold: pods started with the batch (process start-up)")
        header = ["workers", "convert -j N", "per rec.", "beyond enc.", "warm batch", "per job", "x convert"]
        header += [] if args.no_cold else ["cold batch", "x convert"]
        print("  ".join(f"{h:>12}" for h in header))
        try:
            for workers in args.workers:
                _row(workers, source, config, work, n, floor, args)
        finally:
            if server is not None:
                server.terminate()
                server.wait()


def _floor_argv(args: argparse.Namespace) -> list[str]:
    argv = ["--recordings", str(args.recordings), "--seconds", str(args.seconds), "--codec", args.codec]
    return [*argv, "--width", str(args.width), "--height", str(args.height)]


def _floor(args: argparse.Namespace) -> float:
    """Seconds to encode every recording's frames, one recording after the other (its cameras in
    parallel), with the frames already in memory."""
    from bench_encode import encode_floor
    from roboflow_core import VideoConfig
    from roboflow_dataset._synth_content import jpeg_bytes
    from roboflow_dataset.synth import make_image
    from roboflow_media import decode_compressed_image

    count = int(args.seconds * 30)
    raw = [make_image(i, RAW, args.width, args.height) for i in range(count)]
    wrist = [jpeg_bytes(make_image(i, JPEG, args.width, args.height)) for i in range(count)]
    decoded = [decode_compressed_image(data, "jpeg") for data in wrist]
    config = VideoConfig(codec=args.codec)
    seconds: float = sum(encode_floor([raw, decoded], config) for _ in range(args.recordings))
    return seconds


def _upload(inputs: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """Start moto, upload the recordings into a bucket; their glob URL and the server."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_storage import start_moto
    from roboflow_storage import Storage

    endpoint, server = start_moto()
    with urllib.request.urlopen(urllib.request.Request(f"{endpoint}/bench-dist", method="PUT")):
        pass
    query = f"endpoint={endpoint}&region=us-east-1"  # credentials: start_moto puts them in the environment
    bucket = Storage.from_url(f"s3://bench-dist?{query}")
    for path in sorted(inputs.glob("*.mcap")):
        bucket.put(path.name, path.read_bytes())
    return f"s3://bench-dist/*.mcap?{query}", server


def _row(
    workers: int, source: str, config: Path, work: Path, n: int, floor: float, args: argparse.Namespace
) -> None:
    local: list[float] = []
    warm: list[float] = []
    cold: list[float] = []
    for run in range(args.runs):
        local.append(bench_convert(source, config, work / f"local-{workers}-{run}", workers, work))
        warm.append(bench_batch(source, config, work / f"warm-{workers}-{run}", workers, work, warm=True))
        if not args.no_cold:
            cold.append(
                bench_batch(source, config, work / f"cold-{workers}-{run}", workers, work, warm=False)
            )
    conv, batch = statistics.median(local), statistics.median(warm)
    cells = [
        f"{workers}",
        f"{conv:.2f} s",
        f"{conv / n:.3f} s",
        f"{(conv - floor) / n:+.3f} s",
        f"{batch:.2f} s",
        f"{batch / n:.3f} s",
        f"{batch / conv:.2f}",
    ]
    if cold:
        cells += [f"{statistics.median(cold):.2f} s", f"{statistics.median(cold) / conv:.2f}"]
    print("  ".join(f"{c:>12}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
