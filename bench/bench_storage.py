"""Read throughput from S3 (a moto server on loopback) against a local file, through ``Storage``.

Reads one object (64 MiB by default) several ways and prints MB/s, best of ``--repeat`` runs:
a local file read, ``Storage.get`` of the whole object, serial ranged GETs, ``open_reader`` with
and without read-ahead, and ``Spool.local_copy`` (the spool download: parallel ranged GETs streamed into
a file) with its default parts and with one GET; plus a streaming multipart upload. Also prints
how long moto takes for a 1 KiB ranged GET of the object. Run with
``uv run python bench/bench_storage.py [--mib 64] [--block-mib 8] [--repeat 3]``.

moto runs in its own process, keeps objects in temporary files and serves them through werkzeug
(one CPU-bound Python process), so the S3 figures are bounded by moto, not by the client. moto
reads the whole object for every ranged GET (a 1 KiB range of a 64 MiB object costs tens of ms),
so on moto fewer, larger GETs win; on S3 proper a ranged GET costs its range, and several in
flight multiply the throughput of one connection.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from roboflow_storage import LruCache, Spool, Storage, default_spool

MIB = 1 << 20
BUCKET = "roboflow-bench"


def start_moto() -> tuple[str, subprocess.Popen[bytes]]:
    """Start ``moto_server`` in its own process (so it does not share our GIL) on a free port.

    This process's environment then holds the bench credentials and allows plain HTTP to it (as
    a pod's would), so URLs name only the endpoint and region (``QUERY``).
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench-secret",
        AWS_ENDPOINT_URL=endpoint,
        ROBOFLOW_ALLOWED_ENDPOINTS=endpoint,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/"):
                return endpoint, server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise
            time.sleep(0.1)


def best_mbps(run: Callable[[], int], repeat: int) -> float:
    """Best throughput of ``repeat`` runs of ``run`` (which returns the bytes it moved), in MB/s."""
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        moved = run()
        best = max(best, moved / MIB / (time.perf_counter() - start))
    return best


def read_all(reader_factory: Callable[[], Any], chunk: int) -> int:
    """Bytes read from a fresh reader in ``chunk``-sized reads."""
    total = 0
    with reader_factory() as reader:
        while data := reader.read(chunk):
            total += len(data)
    return total


def serial_ranges(storage: Storage, key: str, size: int, block: int) -> int:
    """Bytes read by back-to-back ranged GETs of ``block`` bytes."""
    return sum(
        len(storage.get_range(key, start, min(start + block, size))) for start in range(0, size, block)
    )


def spool(storage: Storage, key: str, cache_dir: Path, part: int, concurrency: int) -> int:
    """Bytes downloaded by ``Spool.local_copy`` into an empty cache."""
    shutil.rmtree(cache_dir, ignore_errors=True)
    spooled = Spool(LruCache(cache_dir), part_size=part, concurrency=concurrency)
    return spooled.local_copy(storage, key).stat().st_size


def small_get_ms(storage: Storage, key: str, repeat: int) -> float:
    """Milliseconds of the fastest of ``repeat`` 1 KiB ranged GETs at the start of ``key``."""
    best = float("inf")
    for _ in range(max(repeat, 5)):
        start = time.perf_counter()
        storage.get_range(key, 0, 1024)
        best = min(best, time.perf_counter() - start)
    return best * 1000


def upload(storage: Storage, key: str, data: bytes, chunk: int) -> int:
    """Bytes sent through a streaming multipart upload written in ``chunk``-sized pieces."""
    with storage.open_writer(key) as out:
        for start in range(0, len(data), chunk):
            out.write(data[start : start + chunk])
    return len(data)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64, help="object size in MiB")
    parser.add_argument("--block-mib", type=int, default=8, help="ranged GET / read-ahead block in MiB")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    rng = random.Random(0)
    data = b"".join(rng.randbytes(min(64, args.mib - i) * MIB) for i in range(0, args.mib, 64))
    size, block, chunk = len(data), args.block_mib * MIB, 1 * MIB
    endpoint, server = start_moto()
    workdir = Path(tempfile.mkdtemp(prefix="roboflow-bench-"))
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT")):
            pass
        query = f"endpoint={endpoint}&region=us-east-1"
        s3 = Storage.from_url(f"s3://{BUCKET}/bench?{query}")
        local = Storage.from_url(workdir)
        (workdir / "obj.bin").write_bytes(data)
        s3.put("obj.bin", data)
        rows = {
            "local file, open().read 1 MiB": best_mbps(
                lambda: read_all(lambda: (workdir / "obj.bin").open("rb"), chunk), args.repeat
            ),
            "local Storage.open_reader": best_mbps(
                lambda: read_all(lambda: local.open_reader("obj.bin", block_size=block), chunk), args.repeat
            ),
            "s3 Storage.get (whole object)": best_mbps(lambda: len(s3.get("obj.bin")), args.repeat),
            f"s3 serial get_range, {args.block_mib} MiB": best_mbps(
                lambda: serial_ranges(s3, "obj.bin", size, block), args.repeat
            ),
        }
        for ahead in (0, 2, 4):
            rows[f"s3 open_reader, read_ahead={ahead}"] = best_mbps(
                lambda ahead=ahead: read_all(  # type: ignore[misc]
                    lambda: s3.open_reader("obj.bin", block_size=block, read_ahead=ahead), chunk
                ),
                args.repeat,
            )
        default = default_spool()
        parts = f"{default.part_size // MIB} MiB x{default.concurrency}"
        for label, part, concurrency in (
            (f"default: {parts}", default.part_size, default.concurrency),
            (f"{args.block_mib} MiB x4", block, 4),
            ("one GET", size, 1),
        ):
            rows[f"s3 local_copy, {label}"] = best_mbps(
                lambda part=part, concurrency=concurrency: spool(  # type: ignore[misc]
                    s3, "obj.bin", workdir / "cache", part, concurrency
                ),
                args.repeat,
            )
        small_ms = small_get_ms(s3, "obj.bin", args.repeat)
        rows["s3 open_writer (multipart, 16 MiB parts)"] = best_mbps(
            lambda: upload(s3, "up.bin", data, chunk), args.repeat
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    local_rate = rows["local file, open().read 1 MiB"]
    print(f"object: {args.mib} MiB, cpus: {os.cpu_count()}")
    print(f"{'path':44} {'MB/s':>9} {'vs local file':>14}")
    for name, rate in rows.items():
        print(f"{name:44} {rate:9.0f} {rate / local_rate:13.1%}")
    print(f"a 1 KiB ranged GET of this {args.mib} MiB object takes {small_ms:.1f} ms on this server")


if __name__ == "__main__":
    main()
