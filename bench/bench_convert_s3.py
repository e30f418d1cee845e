"""Conversion time from and into s3:// (a moto server on loopback) relative to local disk.

Writes one synthetic recording per format asked for, uploads it to a moto bucket and converts it
several ways, best of ``--repeat`` rounds (the ways take turns within a round, so load from other
processes hits them alike): local -> local dir, s3:// -> local dir, s3:// -> s3:// (merge in a
working directory, then upload with ``meta/info.json`` last) and, for MCAP, s3:// -> local dir
with a buffer too small to hold the recording (streamed by ranged GETs). Also times the download
alone (``Spool.local_copy``) and the first byte of a GET (``Spool.growing_copy``), and prints
the floors they imply: a single-file MCAP or ROS1 recording converts in one pass that reads the
download as it arrives, so its floor is local time + first byte; a ``.db3`` needs the whole file
before it can be read, so its floor is local time + download. Prints seconds, CPU seconds of this
process and of the moto server (from ``/proc``; on loopback the server's CPU competes with the
encoder for the same cores, a real store's does not) and ratios to the local run (target: within
10% on loopback). Run with
``uv run python bench/bench_convert_s3.py [--seconds 10] [--formats mcap,ros1,ros2-db3,ros2-mcap]``.

A recording that fits the local buffer (``ROBOFLOW_BUFFER_DIR``; a fresh directory here, emptied
before every run so every run downloads) is downloaded once with one GET and read while it
arrives (``.db3``: by parallel ranged GETs, read once complete); a larger MCAP streams by ranged
GETs. moto is one CPU-bound Python process that reads the whole object for every GET before it
sends the first byte (see ``bench_storage.py``): its first byte comes after about 0.5 ms per MB,
which a real store does not charge. The S3 figures are bounded by moto, not by the client.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_storage import start_moto
from roboflow_core import loads_config
from roboflow_dataset.synth import ACTION_TOPIC, JOINT_TOPIC, SynthFormat, camera_topic, write_recording
from roboflow_pipeline import convert
from roboflow_storage import Storage, default_spool

SUFFIX = {"mcap": ".mcap", "ros1": ".bag"}
QUERY = "endpoint={e}&region=us-east-1"  # credentials: start_moto puts them in the environment


def _config(codec: str, compressed: bool) -> Any:
    return loads_config(
        '[dataset]\nname = "b"\nfps = 30\nrobot_type = "synth"\ntask = "t"\n'
        f'[[mappings]]\ntopic = "{camera_topic("cam_high", compressed)}"\n'
        'feature = "observation.images.cam_high"\nmapping_type = "image"\n'
        f'[[mappings]]\ntopic = "{JOINT_TOPIC}"\nfeature = "observation.state"\n'
        f'[[mappings]]\ntopic = "{ACTION_TOPIC}"\nfeature = "action"\nmapping_type = "action"\n'
        f'[video]\ncodec = "{codec}"\n'
    )


def _cpu_seconds(server_pid: int) -> tuple[float, float]:
    """CPU seconds used so far by this process and by the S3 server (user + system each)."""
    ours = os.times()
    fields = Path(f"/proc/{server_pid}/stat").read_text().rsplit(")", 1)[1].split()
    server = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return ours.user + ours.system, server


def _rounds(
    runs: dict[str, Callable[[int], None]], repeat: int, server_pid: int
) -> dict[str, tuple[float, float, float]]:
    """Best seconds of each run over ``repeat`` rounds, with the CPU seconds of that run (ours,
    the server's); each round runs every one in turn."""
    best = dict.fromkeys(runs, (float("inf"), 0.0, 0.0))
    for i in range(repeat):
        for name, run in runs.items():
            ours, server = _cpu_seconds(server_pid)
            started = time.perf_counter()
            run(i)
            wall = time.perf_counter() - started
            if wall < best[name][0]:
                ours_after, server_after = _cpu_seconds(server_pid)
                best[name] = (wall, ours_after - ours, server_after - server)
    return best


def _upload(store: Storage, local: Path) -> list[tuple[str, int]]:
    """Upload a recording file or bag directory; returns its objects' keys and sizes."""
    files = [local] if local.is_file() else sorted(p for p in local.iterdir() if p.is_file())
    keys = []
    for path in files:
        key = path.name if local.is_file() else f"{local.name}/{path.name}"
        with store.open_writer(key) as out, path.open("rb") as src:
            shutil.copyfileobj(src, out, 16 << 20)
        keys.append((key, path.stat().st_size))
    return keys


def _batch(store: Storage, local: Path, n: int, url: str) -> tuple[list[str], list[Path]]:
    """``n`` distinct copies of a one-file recording, in the store and on disk (the batch rows)."""
    if not local.is_file():
        return [], []
    copies = [local.with_name(f"batch-{j}-{local.name}") for j in range(n)]
    for copy in copies:
        shutil.copyfile(local, copy)
        store.copy(local.name, copy.name)
    return [url.format(c.name) for c in copies], copies


def _bench_format(
    fmt: str, args: argparse.Namespace, endpoint: str, server_pid: int, work: Path, config: Any
) -> None:
    bucket = f"bench-{fmt.replace('-', '')}"
    with urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")):
        pass
    query = QUERY.format(e=endpoint)
    rec = write_recording(
        work / f"rec-{fmt}{SUFFIX.get(fmt, '')}",
        cast(SynthFormat, fmt),
        duration_s=args.seconds,
        width=args.width,
        height=args.height,
        compressed=args.compressed,
    )
    local = Path(rec.path)
    store = Storage.from_url(f"s3://{bucket}?{query}")
    objects = _upload(store, local)
    remote = f"s3://{bucket}/{local.name}?{query}"
    buffer = Path(os.environ["ROBOFLOW_BUFFER_DIR"])

    def fresh_buffer(max_bytes: int | None = None) -> None:
        shutil.rmtree(buffer, ignore_errors=True)  # every run downloads what it spools
        if max_bytes is None:
            os.environ.pop("ROBOFLOW_BUFFER_MAX_BYTES", None)
        else:
            os.environ["ROBOFLOW_BUFFER_MAX_BYTES"] = str(max_bytes)

    def local_run(i: int) -> None:
        convert([local], config, work / f"{fmt}-local-{i}")

    def download(_: int) -> None:
        fresh_buffer()
        spool = default_spool()
        for key, _size in objects:
            spool.local_copy(store, key)

    def first_byte(_: int) -> None:
        fresh_buffer()
        key = max(objects, key=lambda o: o[1])[0]  # the storage file of a bag
        with default_spool().growing_copy(store, key) as copy, copy.open() as stream:
            stream.read(1)

    def s3_to_local(i: int) -> None:
        fresh_buffer()
        convert([remote], config, work / f"{fmt}-s3-{i}")

    def s3_to_s3(i: int) -> None:
        fresh_buffer()
        convert([remote], config, f"s3://{bucket}/out-{i}?{query}")

    def streamed(i: int) -> None:
        fresh_buffer(max_bytes=min(nbytes for _, nbytes in objects) - 1)
        try:
            convert([remote], config, work / f"{fmt}-streamed-{i}")
        finally:
            fresh_buffer()

    batch, local_copies = _batch(store, local, args.batch, f"s3://{bucket}/{{}}?{query}")

    def local_batch(i: int) -> None:
        convert(local_copies, config, work / f"{fmt}-lbatch-{i}")

    def s3_batch(i: int) -> None:
        fresh_buffer()
        convert(batch, config, work / f"{fmt}-sbatch-{i}")

    runs = {
        "local": local_run,
        "download": download,
        "s3": s3_to_local,
        "s3s3": s3_to_s3,
        "first": first_byte,
    }
    if local.is_file() and args.batch > 1:
        runs |= {"lbatch": local_batch, "sbatch": s3_batch}
    if fmt in ("mcap", "ros2-mcap"):
        runs["streamed"] = streamed
    part_size = default_spool().part_size
    _report(fmt, _rounds(runs, args.repeat, server_pid), objects, part_size, args.batch)


def _report(
    fmt: str,
    best: dict[str, tuple[float, float, float]],
    objects: list[tuple[str, int]],
    part: int,
    batch: int,
) -> None:
    """Seconds, CPU seconds (this process / the S3 server) and ratios to the local run."""
    base = best["local"][0]
    dl = best["download"][0]
    size = sum(nbytes for _, nbytes in objects) / (1 << 20)
    indent = " " * 22

    def row(label: str, name: str, against: float | None = None, note: str = "") -> None:
        wall, ours, server = best[name]
        ratio = f" ({wall / against:.2f} x local{note})" if against else f" ({note})" if note else ""
        print(f"{indent}{label:<23} {wall:6.2f} s  cpu {ours:5.2f} + server {server:5.2f} s{ratio}")

    print(f"{fmt:<9} {size:7.1f} MB")
    row("local -> local", "local")
    gets = sum(max(1, (nbytes + part // 2) // part) for _, nbytes in objects)
    row("download (local_copy)", "download", note=f"{size / dl:.0f} MB/s, {gets} ranged GETs")
    row("first byte (one GET)", "first", note="with its HEAD")
    one_pass = fmt != "ros2-db3"
    floor = base + (best["first"][0] if one_pass else dl)
    label = "floor: local + 1st byte" if one_pass else "floor: local + download"
    print(f"{indent}{label:<23} {floor:6.2f} s ({floor / base:.2f} x local)")
    for label, name in [("s3 -> local", "s3"), ("s3 -> s3", "s3s3"), ("s3 -> local, streamed", "streamed")]:
        if name in best:
            row(label, name, base)
    if "sbatch" in best:  # the next recording downloads while this one converts
        row(f"{batch} recordings, local", "lbatch")
        row(f"{batch} recordings, s3", "sbatch", best["lbatch"][0], "; prefetching")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--codec", default="libx264")
    parser.add_argument(
        "--compressed",
        action="store_true",
        help="JPEG CompressedImage cameras (as fleets record) instead of raw rgb8",
    )
    parser.add_argument("--formats", default="mcap,ros1,ros2-db3,ros2-mcap")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4, help="recordings in the batch rows (prefetch)")
    args = parser.parse_args(argv)
    endpoint, server = start_moto()
    work = Path(tempfile.mkdtemp(prefix="roboflow-bench-s3-"))
    os.environ["ROBOFLOW_BUFFER_DIR"] = str(work / "buffer")
    try:
        config = _config(args.codec, args.compressed)
        print(
            f"recording: {args.seconds:.0f} s, {args.width}x{args.height} "
            f"{'JPEG' if args.compressed else 'rgb8'} at 30 Hz, codec {args.codec}; "
            f"cpus: {os.cpu_count()}; best of {args.repeat}"
        )
        for fmt in args.formats.split(","):
            _bench_format(fmt, args, endpoint, server.pid, work, config)
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
