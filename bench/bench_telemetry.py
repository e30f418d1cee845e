"""What metrics cost a conversion: the same segmented conversion (as a worker runs it) with and
without telemetry, alternated, plus a bound from the cost of one stage timing.

    uv run python bench/bench_telemetry.py                  # 10 s, two 320x240 cameras, libx264
    uv run python bench/bench_telemetry.py --seconds 20 --runs 5

"With" means the SDK with its Prometheus reader enabled and the conversion inside a job trace,
so every stage timing, counter and histogram is live (traces are not exported: that is off by
default). The bound multiplies the stage timings a conversion makes (one per decoded frame, one
per encoded frame and camera) by the measured cost of one, over the conversion's time: on a
shared machine it is steadier than the difference of two wall times.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from roboflow_core import loads_config, telemetry
from roboflow_dataset.synth import write_recording
from roboflow_pipeline import convert_recording

CAMERAS = ("cam_high", "cam_wrist")
CONFIG = """
[dataset]
name = "bench"
fps = 30
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
[video]
codec = "libx264"
"""


def _convert(recording: Path, work: Path, *, traced: bool) -> tuple[float, int]:
    config = loads_config(CONFIG)
    out = work / "episode"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    if traced:
        with telemetry.job_trace("bench", {"roboflow.job": "bench"}):
            episode = convert_recording(recording, config, out, segment_frames=1800)
    else:
        episode = convert_recording(recording, config, out, segment_frames=1800)
    return time.perf_counter() - start, episode.length


def _timing_cost(n: int = 200_000) -> float:
    """Seconds one ``telemetry.timed`` takes inside a job (its body empty)."""
    with telemetry.job_trace("bench", {"roboflow.job": "bench"}):
        start = time.perf_counter()
        for _ in range(n):
            with telemetry.timed("decode"):
                pass
        return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="roboflow-bench-") as tmp:
        work = Path(tmp)
        recording = work / "rec.mcap"
        write_recording(recording, "mcap", duration_s=args.seconds, cameras=CAMERAS, width=320, height=240)
        _convert(recording, work, traced=False)  # warm caches and imports
        plain, with_metrics = [], []
        frames = 0
        for i in range(args.runs):
            if i == 0:
                telemetry.enable_metrics(pod="bench")  # from here on instruments are live
            with_metrics.append(_convert(recording, work, traced=True)[0])
            seconds, frames = _convert(recording, work, traced=False)
            plain.append(seconds)
        cost = _timing_cost()
    base, instrumented = statistics.median(plain), statistics.median(with_metrics)
    timings = frames * (1 + len(CAMERAS))
    print(f"conversion of {frames} frames, {len(CAMERAS)} cameras: median of {args.runs} runs")
    print(f"  without telemetry {base:.3f} s, with metrics and a job trace {instrumented:.3f} s")
    print(f"  difference {100 * (instrumented / base - 1):+.2f}% (wall time, noisy on a shared machine)")
    total_ms = cost * timings * 1e3
    print(f"  one stage timing {cost * 1e6:.2f} us x {timings} per conversion = {total_ms:.2f} ms")
    print(f"  bound from the timings: {100 * cost * timings / base:.3f}% of the conversion")


if __name__ == "__main__":
    main()
