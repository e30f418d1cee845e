"""Conversion time from and into s3:// (a moto server on loopback) relative to local disk.

Writes one synthetic recording per format asked for, uploads it to a moto bucket and converts it
three ways, best of ``--repeat``: local -> local dir, s3:// -> local dir, s3:// -> s3:// (merge in a
working directory, then upload with ``meta/info.json`` last). Prints seconds and the ratio to the
local run (target: within 10% on loopback). Run with
``uv run python bench/bench_convert_s3.py [--seconds 10] [--formats mcap,ros1] [--repeat 2]``.

MCAP is read with ranged GETs through ``Storage.open_reader``; ROS1 bags and .db3 go through the
local spool (``ROBOFLOW_BUFFER_DIR``; pointed at a fresh directory here so every run downloads).
moto is one CPU-bound Python process: the S3 figures are bounded by moto, not by the client.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_storage import start_moto
from roboflow_core import loads_config
from roboflow_dataset.synth import ACTION_TOPIC, JOINT_TOPIC, SynthFormat, camera_topic, write_recording
from roboflow_pipeline import convert
from roboflow_storage import Storage

SUFFIX = {"mcap": ".mcap", "ros1": ".bag"}
QUERY = "endpoint={e}&region=us-east-1&access_key_id=bench&secret_access_key=bench"


def _config(codec: str) -> Any:
    return loads_config(
        '[dataset]\nname = "b"\nfps = 30\nrobot_type = "synth"\ntask = "t"\n'
        f'[[mappings]]\ntopic = "{camera_topic("cam_high", False)}"\n'
        'feature = "observation.images.cam_high"\nmapping_type = "image"\n'
        f'[[mappings]]\ntopic = "{JOINT_TOPIC}"\nfeature = "observation.state"\n'
        f'[[mappings]]\ntopic = "{ACTION_TOPIC}"\nfeature = "action"\nmapping_type = "action"\n'
        f'[video]\ncodec = "{codec}"\n'
    )


def _best(run: Callable[[int], None], repeat: int) -> float:
    best = float("inf")
    for i in range(repeat):
        started = time.perf_counter()
        run(i)
        best = min(best, time.perf_counter() - started)
    return best


def _bench_format(fmt: str, args: argparse.Namespace, endpoint: str, work: Path, config: Any) -> None:
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
    )
    local = Path(rec.path)
    store = Storage.from_url(f"s3://{bucket}?{query}")
    files = [local] if local.is_file() else sorted(p for p in local.iterdir() if p.is_file())
    for path in files:
        key = path.name if local.is_file() else f"{local.name}/{path.name}"
        with store.open_writer(key) as out, path.open("rb") as src:
            shutil.copyfileobj(src, out, 16 << 20)
    remote = f"s3://{bucket}/{local.name}?{query}"

    def local_run(i: int) -> None:
        convert([local], config, work / f"{fmt}-local-{i}")

    def s3_to_local(i: int) -> None:
        shutil.rmtree(work / "buffer", ignore_errors=True)  # every run downloads what it spools
        convert([remote], config, work / f"{fmt}-s3-{i}")

    def s3_to_s3(i: int) -> None:
        shutil.rmtree(work / "buffer", ignore_errors=True)
        convert([remote], config, f"s3://{bucket}/out-{i}?{query}")

    size = sum(p.stat().st_size for p in files) / (1 << 20)
    base = _best(local_run, args.repeat)
    from_s3 = _best(s3_to_local, args.repeat)
    both = _best(s3_to_s3, args.repeat)
    print(f"{fmt:<9} {size:7.1f} MB  local -> local {base:6.2f} s")
    print(f"{'':<9} {'':>7}     s3 -> local    {from_s3:6.2f} s ({from_s3 / base:.2f} x local)")
    print(f"{'':<9} {'':>7}     s3 -> s3       {both:6.2f} s ({both / base:.2f} x local)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--codec", default="libx264")
    parser.add_argument("--formats", default="mcap,ros1")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    endpoint, server = start_moto()
    work = Path(tempfile.mkdtemp(prefix="roboflow-bench-s3-"))
    os.environ["ROBOFLOW_BUFFER_DIR"] = str(work / "buffer")
    try:
        config = _config(args.codec)
        print(
            f"recording: {args.seconds:.0f} s, {args.width}x{args.height} rgb8 at 30 Hz, codec {args.codec}"
        )
        for fmt in args.formats.split(","):
            _bench_format(fmt, args, endpoint, work, config)
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
