"""Distributed mode vs `roboflow convert --jobs N`: overhead and throughput against worker count.

The same recordings are converted into fresh datasets: by `roboflow convert --jobs N` (local
process pool), and as a batch on the embedded SQLite store run by N `roboflow run --role worker`
processes plus one control pod (scanner, reaper, finalizer). "warm" times submit -> finished
dataset with the pods already running (as in a cluster); "cold" starts the pods with the batch,
so it pays their process start-up (~1.5 s of imports each), like `convert` does.

    uv run python bench/bench_distributed.py                      # 12 recordings, 320x240, 3 s each
    uv run python bench/bench_distributed.py --recordings 24 --workers 1 2 3
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
import subprocess
import sys
import tempfile
import time
import urllib.request
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


def _env(work: Path) -> dict[str, str]:
    """The environment of one run: a fresh download buffer, so inputs in a store are downloaded."""
    return {**os.environ, "ROBOFLOW_BUFFER_DIR": tempfile.mkdtemp(prefix="buffer-", dir=work)}


def _run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout.strip()


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
    batch = _run([ROBOFLOW, "submit", inputs, "-c", str(config), "-o", str(out), "--store", store])
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
    parser.add_argument("--recordings", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--codec", default="libx264")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--s3", action="store_true", help="read the recordings from a local S3 server")
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
        source = str(inputs / "*.mcap")
        server = None
        if args.s3:
            source, server = _upload(inputs)
        print(
            f"{args.recordings} recordings, {args.width}x{args.height}, {args.seconds:g} s each, "
            f"~{frames} camera frames, {args.codec}, {os.cpu_count()} CPUs"
            + (", read from s3:// (moto on loopback)" if args.s3 else "")
        )
        print("warm: pods already running (a cluster); cold: pods started with the batch (process start-up)")
        header = ["workers", "convert -j N", "warm", "overhead", "cold", "overhead", "frames/s warm"]
        print("  ".join(f"{h:>13}" for h in header))
        try:
            for n in args.workers:
                _row(n, source, config, work, frames)
        finally:
            if server is not None:
                server.terminate()
                server.wait()


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


def _row(n: int, source: str, config: Path, work: Path, frames: int) -> None:
    local = bench_convert(source, config, work / f"local-{n}", n, work)
    warm = bench_batch(source, config, work / f"warm-{n}", n, work, warm=True)
    cold = bench_batch(source, config, work / f"cold-{n}", n, work, warm=False)
    cells = [
        f"{n}",
        f"{local:.2f} s",
        f"{warm:.2f} s",
        f"{100 * (warm / local - 1):+.1f}%",
        f"{cold:.2f} s",
        f"{100 * (cold / local - 1):+.1f}%",
        f"{frames / warm:.1f}",
    ]
    print("  ".join(f"{c:>13}" for c in cells))


if __name__ == "__main__":
    main()
