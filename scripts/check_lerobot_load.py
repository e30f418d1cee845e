#!/usr/bin/env python3
"""Check that a LeRobot v3.0 dataset written by Roboflow loads and decodes frame-exactly with REAL lerobot.

Runs under a lerobot virtualenv (NOT the repo's env), imports nothing from roboflow. Two modes,
chosen by the lerobot it runs under:

- lerobot 0.4.x (Python 3.11): colour cameras only (a dataset with depth cameras is a failure:
  lerobot before 0.6 cannot read them)::

    python3.11 -m venv /tmp/lerobot-venv && /tmp/lerobot-venv/bin/pip install lerobot==0.4.4
    /tmp/lerobot-venv/bin/python scripts/check_lerobot_load.py /tmp/lv/ds

- lerobot 0.6.x (Python >= 3.12): also depth cameras (``is_depth_map`` features)::

    uv venv -p 3.12 /tmp/lerobot06 && uv pip install -p /tmp/lerobot06 "lerobot[dataset]==0.6.1"
    /tmp/lerobot06/bin/python scripts/check_lerobot_load.py /tmp/lv/depth-ds

What it checks, for each video backend (pyav and torchcodec), under HF_HUB_OFFLINE=1 with a
throwaway HF_HOME:

- ``LeRobotDatasetMetadata``: totals, fps, features, tasks; ``meta.stats`` has every numeric and
  camera feature with min/max/mean/std/count/q01/q10/q50/q90/q99, cameras in (3,1,1) shape.
- ``LeRobotDataset`` item by item over EVERY index: ``timestamp == frame_index / fps``,
  ``frame_index``/``episode_index``/``index`` consistent with ``meta.episodes``, ``task`` is the
  task string, every camera frame decodes to float CHW in [0, 1] of the declared shape, and its
  marker (the source frame index drawn as 12 bars in the top half by Roboflow's synthetic
  recordings) is non-decreasing within the episode and equal to ``frame_index + offset`` with one
  constant offset per episode (expected 0 at 30 fps data from a 30 Hz camera). The decoded frame
  is also compared against a re-rendered synthetic source frame (mean abs error).
- Once more with ``delta_timestamps`` = [-1/fps, 0, 1/fps] for every camera, state and action key:
  each neighbour equals the plain-pass value of frame ``frame_index + d`` (clamped at episode
  edges) and ``*_is_pad`` flags exactly the out-of-episode queries.
- A ``torch.utils.data.DataLoader`` (batch_size 8, shuffled) over one epoch sees every index once.
- lerobot >= 0.6, depth cameras (``meta.depth_keys``): shape ``[H, W, 1]``, stats of shape
  (1, 1, 1) in the feature's ``depth_unit``; every item's depth is a float32 ``(1, H, W)`` tensor in
  millimetres equal to the synthetic source depth (``roboflow sample``'s depth formula) of the
  frame's source index (the marker of the colour camera of the same name, else ``frame_index +
  offset``) within half a quantization step plus lerobot's rounding to 1 mm; no-measurement
  pixels (0) read back as ``depth_min``; ``depth_output_unit="m"`` gives the same in metres; with
  ``delta_timestamps`` each neighbour equals the plain pass's frame.

Exit status 0 when everything passed, 1 otherwise. ``--json`` writes a machine-readable summary.
"""

# ruff: noqa: C901, E501, SIM102

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
import zlib
from pathlib import Path

# Offline and a throwaway HF cache must be set before lerobot / datasets / huggingface_hub import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
_HF_HOME = tempfile.mkdtemp(prefix="hf_home_check_")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_LEROBOT_HOME"] = os.path.join(_HF_HOME, "lerobot")
os.environ.setdefault("WANDB_MODE", "disabled")

import numpy as np  # noqa: E402
import torch  # noqa: E402

MARKER_BITS = 12
STAT_NAMES = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")
DEFAULT_KEYS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


# --------------------------------------------------------------------------------------------
# Synthetic content (re-implemented from the Roboflow spec of the sample images, no imports)
# --------------------------------------------------------------------------------------------


def _bar_edges(width: int) -> np.ndarray:
    return np.linspace(0, width, MARKER_BITS + 1).round().astype(np.intp)


def read_marker_chw(frame: torch.Tensor) -> int:
    """The source frame index drawn in the top half of a float CHW [0, 1] image (12 bars, MSB first)."""
    gray = frame.float().mean(dim=0).numpy()  # (H, W)
    height, width = gray.shape
    band = gray[height // 8 : max(3 * height // 8, height // 8 + 1)]
    edges = _bar_edges(width)
    value = 0
    for bit in range(MARKER_BITS):
        lo, hi = int(edges[bit]), int(edges[bit + 1])
        margin = (hi - lo) // 4
        value = value << 1 | int(band[:, lo + margin : hi - margin].mean() >= 0.5)
    return value


def synth_image(index: int, camera: str, width: int, height: int) -> np.ndarray:
    """The source image (HWC uint8) of frame ``index``: marker bars on top, per-camera gradient below."""
    top = height // 2
    row = np.zeros(width, dtype=np.uint8)
    edges = _bar_edges(width)
    for bit in range(MARKER_BITS):
        if index >> (MARKER_BITS - 1 - bit) & 1:
            row[edges[bit] : edges[bit + 1]] = 255
    crc = zlib.crc32(camera.encode())
    colour = np.array([crc & 0xFF, (crc >> 8) & 0xFF, (crc >> 16) & 0xFF], dtype=np.float32) * 0.75 + 64
    rows = height - top
    ramp_x = np.linspace(0.3, 1.0, width, dtype=np.float32)
    ramp_y = np.linspace(1.0, 0.5, rows, dtype=np.float32)
    gradient = (ramp_y[:, None, None] * ramp_x[None, :, None] * colour).clip(0, 255).astype(np.uint8)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:top] = row[None, :, None]
    image[top:] = gradient
    return image


def synth_depth(index: int, camera: str, width: int, height: int) -> np.ndarray:
    """The source depth (HW millimetres) of frame ``index``: x and y ramps plus 37 mm per frame, 0 on every 17th diagonal."""
    y, x = np.mgrid[0:height, 0:width]
    depth = (
        300 + x * 3000 // width + y * 2000 // height + 37 * (index % 101) + zlib.crc32(camera.encode()) % 100
    )
    depth[(x + y + index) % 17 == 0] = 0
    return depth.astype(np.float64)


def depth_error_bound_mm(source_mm: np.ndarray, info: dict) -> np.ndarray:
    """Half a 12-bit quantization step at each source depth, plus lerobot's rounding to whole millimetres."""
    low, high, shift = info["video.depth_min"], info["video.depth_max"], info["video.shift"]
    if info["video.use_log"]:
        step_m = (source_mm / 1000 + shift) * math.log((high + shift) / (low + shift)) / 4095
    else:
        step_m = np.full(source_mm.shape, (high - low) / 4095)
    return step_m * 1000 / 2 + 0.5 + 1e-3


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


class Report:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.timings: dict[str, float] = {}
        self.mappings: dict[str, dict] = {}

    def fail(self, msg: str) -> None:
        if len(self.failures) < 200:
            print(f"  FAIL: {msg}", flush=True)
        self.failures.append(msg)

    def note(self, msg: str) -> None:
        print(f"  note: {msg}", flush=True)
        self.notes.append(msg)


def _scalar(value) -> float:
    if isinstance(value, torch.Tensor):
        return value.reshape(-1)[0].item()
    return float(np.asarray(value).reshape(-1)[0])


def _camera_name(key: str) -> str:
    parts = key.split(".")
    return parts[-2] if parts[-1] == "depth" and len(parts) > 3 else parts[-1]


def _depth_keys(meta) -> list[str]:
    return list(getattr(meta, "depth_keys", []))


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def check_metadata(repo_id: str, root: Path, rep: Report):
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    print("== LeRobotDatasetMetadata", flush=True)
    meta = LeRobotDatasetMetadata(repo_id, root=root)
    info = json.loads((root / "meta" / "info.json").read_text())
    print(
        f"  codebase_version={info['codebase_version']} fps={meta.fps} episodes={meta.total_episodes} "
        f"frames={meta.total_frames} tasks={meta.total_tasks} cameras={meta.camera_keys} "
        f"video_keys={meta.video_keys}"
    )
    if info["codebase_version"] != "v3.0":
        rep.fail(f"codebase_version {info['codebase_version']!r} != 'v3.0'")
    if not isinstance(info["fps"], int):
        rep.fail(f"info.json fps is {type(info['fps']).__name__}, must be int")
    if len(meta.episodes) != meta.total_episodes:
        rep.fail(f"meta.episodes has {len(meta.episodes)} rows, total_episodes={meta.total_episodes}")
    lengths = sum(int(x) for x in meta.episodes["length"])
    if lengths != meta.total_frames:
        rep.fail(f"sum of episode lengths {lengths} != total_frames {meta.total_frames}")
    if len(meta.tasks) != meta.total_tasks:
        rep.fail(f"tasks.parquet has {len(meta.tasks)} rows, total_tasks={meta.total_tasks}")
    print(f"  tasks: {list(meta.tasks.index)} (index name {meta.tasks.index.name!r})")
    depth_keys = _depth_keys(meta)
    declared_depth = [k for k, ft in info["features"].items() if (ft.get("info") or {}).get("is_depth_map")]
    if declared_depth and not hasattr(meta, "depth_keys"):
        rep.fail(
            f"depth cameras {declared_depth}: this lerobot predates depth maps (0.6); run under lerobot >= 0.6"
        )
    elif sorted(depth_keys) != sorted(declared_depth):
        rep.fail(f"meta.depth_keys {depth_keys} != features with is_depth_map {declared_depth}")
    if depth_keys:
        print(f"  depth cameras: {depth_keys}")
    for k in meta.camera_keys:
        ft = meta.features[k]
        if ft.get("names") is None or len(ft["names"]) != 3 or ft["names"][2] not in ("channels", "channel"):
            rep.fail(f"camera {k} names={ft.get('names')!r}: must be ['height','width','channels']")
        want_channels = 1 if k in depth_keys else 3
        if list(ft["shape"])[-1] != want_channels:
            rep.fail(f"camera {k} shape {ft['shape']} not [H, W, {want_channels}]")
        if k in depth_keys:
            dinfo = ft.get("info") or {}
            missing = [
                f
                for f in ("depth_unit", "video.depth_min", "video.depth_max", "video.shift", "video.use_log")
                if f not in dinfo
            ]
            if missing:
                rep.fail(f"depth camera {k} info lacks {missing}")
            print(
                f"  {k}: unit={dinfo.get('depth_unit')} codec={dinfo.get('video.codec')} pix_fmt={dinfo.get('video.pix_fmt')} "
                f"depth_min={dinfo.get('video.depth_min')} depth_max={dinfo.get('video.depth_max')} "
                f"shift={dinfo.get('video.shift')} use_log={dinfo.get('video.use_log')}"
            )

    # stats
    stats = meta.stats
    if stats is None:
        rep.fail("meta.stats is None (no meta/stats.json)")
    else:
        for key, ft in meta.features.items():
            if ft["dtype"] == "string":
                continue
            if key not in stats:
                rep.fail(f"stats.json lacks feature {key}")
                continue
            missing = [s for s in STAT_NAMES if s not in stats[key]]
            if missing:
                rep.fail(f"stats[{key}] lacks {missing}")
            for s in STAT_NAMES:
                if s not in stats[key]:
                    continue
                arr = np.asarray(stats[key][s])
                if s == "count":
                    if arr.shape != (1,):
                        rep.fail(f"stats[{key}][count] shape {arr.shape} != (1,)")
                    continue
                if key in depth_keys:
                    want = (1, 1, 1)  # raw values in depth_unit, not scaled to [0, 1]
                elif ft["dtype"] in ("video", "image"):
                    want = (3, 1, 1)
                    if arr.shape == want and not (np.all(arr >= -1e-6) and np.all(arr <= 1 + 1e-6)):
                        rep.fail(f"stats[{key}][{s}] outside [0, 1]: {arr.reshape(-1)}")
                else:
                    want = tuple(ft["shape"])
                if arr.shape != want:
                    rep.fail(f"stats[{key}][{s}] shape {arr.shape} != {want}")
                if not np.all(np.isfinite(arr)):
                    rep.fail(f"stats[{key}][{s}] not finite")
            if "q01" in stats[key] and "q99" in stats[key]:
                if np.any(np.asarray(stats[key]["q01"]) > np.asarray(stats[key]["q99"]) + 1e-9):
                    rep.fail(f"stats[{key}] q01 > q99")
        for k in meta.camera_keys:
            if k in stats:
                st = {s: np.asarray(stats[k][s]).reshape(-1).round(4).tolist() for s in ("mean", "std")}
                print(f"  stats[{k}]: {st} count={np.asarray(stats[k]['count']).tolist()}")
        extra = sorted(set(stats) - set(meta.features))
        if extra:
            rep.note(f"stats.json has keys not in features: {extra}")
    return meta


def iterate_all(
    ds, meta, backend: str, task: str, rep: Report, tag: str, expect_offset: int | None = 0
) -> dict:
    """One pass over every index; returns per-index records for the delta pass."""
    fps = meta.fps
    cams = list(meta.camera_keys)
    vec_keys = [
        k
        for k, ft in meta.features.items()
        if ft["dtype"] not in ("video", "image", "string") and k not in DEFAULT_KEYS
    ]
    episodes = meta.episodes
    ep_from = {
        int(e): int(f) for e, f in zip(episodes["episode_index"], episodes["dataset_from_index"], strict=True)
    }
    ep_len = {int(e): int(n) for e, n in zip(episodes["episode_index"], episodes["length"], strict=True)}
    ep_tasks = {int(e): list(t) for e, t in zip(episodes["episode_index"], episodes["tasks"], strict=True)}
    depth_keys = set(_depth_keys(meta))
    colour_of = {_camera_name(c): c for c in cams if c not in depth_keys}
    records: dict[int, dict] = {}
    offsets: dict[tuple[str, int], set] = {}
    last_marker: dict[tuple[str, int], int] = {}
    max_mae: dict[str, float] = {}
    depth_err: dict[str, float] = {}
    t0 = time.perf_counter()
    n = len(ds)
    if n != meta.total_frames:
        rep.fail(f"[{tag}] len(ds)={n} != total_frames={meta.total_frames}")
    for i in range(n):
        try:
            item = ds[i]
        except Exception as exc:
            rep.fail(f"[{tag}] ds[{i}] raised {type(exc).__name__}: {exc}")
            if len(rep.failures) == 1 or i == 0:
                traceback.print_exc()
            continue
        ts = _scalar(item["timestamp"])
        fi = int(_scalar(item["frame_index"]))
        ep = int(_scalar(item["episode_index"]))
        idx = int(_scalar(item["index"]))
        if idx != i:
            rep.fail(f"[{tag}] ds[{i}]['index'] = {idx}")
        if ep not in ep_from:
            rep.fail(f"[{tag}] ds[{i}] episode_index {ep} not in meta.episodes")
            continue
        if idx != ep_from[ep] + fi or not 0 <= fi < ep_len[ep]:
            rep.fail(f"[{tag}] ds[{i}] index {idx} != dataset_from_index {ep_from[ep]} + frame_index {fi}")
        if abs(ts - fi / fps) > 1e-6:
            rep.fail(f"[{tag}] ds[{i}] timestamp {ts!r} != frame_index/fps {fi / fps!r}")
        got_task = item.get("task")
        want_task = task if task != "episode" else (ep_tasks[ep][0] if len(ep_tasks[ep]) == 1 else None)
        if not isinstance(got_task, str) or got_task not in ep_tasks[ep] or want_task not in (None, got_task):
            rep.fail(
                f"[{tag}] ds[{i}]['task'] = {got_task!r}, want {want_task!r} (episode tasks {ep_tasks[ep]})"
            )
        rec = {"ep": ep, "fi": fi, "vec": {}, "marker": {}, "depth": {}}
        for k in vec_keys:
            v = item[k]
            if not isinstance(v, torch.Tensor):
                rep.fail(f"[{tag}] ds[{i}][{k}] is {type(v).__name__}")
                continue
            if not torch.isfinite(v).all():
                rep.fail(f"[{tag}] ds[{i}][{k}] not finite")
            rec["vec"][k] = v.clone()
        for cam in sorted(cams, key=lambda c: c in depth_keys):  # colour first: depth takes its marker
            frame = item[cam]
            h, w, c = meta.features[cam]["shape"]
            if tuple(frame.shape) != (c, h, w) or frame.dtype != torch.float32:
                rep.fail(
                    f"[{tag}] ds[{i}][{cam}] shape {tuple(frame.shape)} dtype {frame.dtype}, want ({c},{h},{w}) float32"
                )
                continue
            if cam in depth_keys:
                colour = colour_of.get(_camera_name(cam))
                source = rec["marker"].get(colour, fi + (expect_offset or 0))
                err = check_depth_frame(frame, source, cam, meta.features[cam]["info"], rep, f"{tag}] ds[{i}")
                depth_err[cam] = max(depth_err.get(cam, 0.0), err)
                rec["depth"][cam] = frame.clone()
                continue
            if float(frame.min()) < -1e-6 or float(frame.max()) > 1 + 1e-6:
                rep.fail(f"[{tag}] ds[{i}][{cam}] values outside [0,1]")
            marker = read_marker_chw(frame)
            rec["marker"][cam] = marker
            key = (cam, ep)
            # markers wrap at 2**12 in long recordings: compare modulo, a step back of < half the range is a decrease
            if key in last_marker and (marker - last_marker[key]) % 2**MARKER_BITS >= 2 ** (MARKER_BITS - 1):
                rep.fail(
                    f"[{tag}] {cam} ep {ep} frame {fi}: marker {marker} < previous {last_marker[key]} (decreasing)"
                )
            last_marker[key] = marker
            offsets.setdefault(key, set()).add(
                (marker - fi + 2 ** (MARKER_BITS - 1)) % 2**MARKER_BITS - 2 ** (MARKER_BITS - 1)
            )
            # compare with the re-rendered source frame
            src = (
                torch.from_numpy(synth_image(marker, _camera_name(cam), w, h)).permute(2, 0, 1).float() / 255
            )
            mae = float((frame - src).abs().mean())
            max_mae[cam] = max(max_mae.get(cam, 0.0), mae)
        records[i] = rec
    elapsed = time.perf_counter() - t0
    rep.timings[f"{tag}: full iteration ({n} items)"] = elapsed
    print(f"  [{tag}] iterated {n} items in {elapsed:.2f} s ({n / elapsed:.1f} items/s)", flush=True)
    for (cam, ep), offs in sorted(offsets.items()):
        desc = f"marker - frame_index in {sorted(offs)}"
        rep.mappings[f"{tag}:{cam}:ep{ep}"] = {"offsets": sorted(offs)}
        print(f"  [{tag}] {cam} episode {ep}: {desc}")
        if len(offs) != 1:
            rep.fail(f"[{tag}] {cam} ep {ep}: marker is not frame_index + constant ({sorted(offs)})")
        elif expect_offset is not None and next(iter(offs)) != expect_offset:
            rep.fail(
                f"[{tag}] {cam} ep {ep}: marker = frame_index + {next(iter(offs))}, expected + {expect_offset}"
            )
    for cam, err in depth_err.items():
        print(
            f"  [{tag}] {cam}: max |depth - source| over valid pixels = {err:.2f} mm (within the quantizer's bound)"
        )
        rep.mappings[f"{tag}:{cam}:max_depth_error_mm"] = {"value": err}
    for cam, mae in max_mae.items():
        print(f"  [{tag}] {cam}: max mean-abs-error vs re-rendered source frame = {mae:.4f}")
        if mae > 0.06:
            rep.fail(f"[{tag}] {cam}: decoded frame differs from source render (max MAE {mae:.4f} > 0.06)")
    return records


def check_depth_frame(
    frame: torch.Tensor, source: int, cam: str, info: dict, rep: Report, where: str
) -> float:
    """One decoded depth frame (1, H, W, millimetres) against the source depth; returns the max error (mm)."""
    _, h, w = frame.shape
    src = synth_depth(source, _camera_name(cam), w, h)
    got = frame[0].double().numpy()
    valid = src > 0
    err = np.abs(got - src)
    bound = depth_error_bound_mm(src, info)
    bad = int((err[valid] > bound[valid]).sum())
    if bad:
        rep.fail(
            f"[{where}] {cam}: {bad} pixels beyond the quantizer's error (max {err[valid].max():.2f} mm) vs source {source}"
        )
    invalid = got[~valid]
    if invalid.size and not np.all(invalid == info["video.depth_min"] * 1000):
        rep.fail(f"[{where}] {cam}: no-measurement pixels read {np.unique(invalid)[:5]}, want depth_min")
    return float(err[valid].max()) if valid.any() else 0.0


def check_depth_metres(root: Path, repo_id: str, meta, rep: Report) -> None:
    """``depth_output_unit='m'`` returns the millimetre values / 1000."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    keys = _depth_keys(meta)
    if not keys:
        return
    mm = LeRobotDataset(repo_id, root=root, video_backend="pyav")
    m = LeRobotDataset(repo_id, root=root, video_backend="pyav", depth_output_unit="m")
    for i in (0, len(mm) - 1):
        for k in keys:
            a, b = mm[i][k], m[i][k]
            if not torch.allclose(a / 1000, b, atol=5.1e-4):
                rep.fail(
                    f"depth {k} ds[{i}] in metres differs from millimetres / 1000 by {float((a / 1000 - b).abs().max())}"
                )
    print(f"  depth_output_unit='m': {keys} at the first and last index equal the millimetres / 1000")


def iterate_delta(root: Path, repo_id: str, meta, backend: str, records: dict, rep: Report, tag: str) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    fps = meta.fps
    cams = list(meta.camera_keys)
    vec_keys = [
        k
        for k, ft in meta.features.items()
        if ft["dtype"] not in ("video", "image", "string") and k not in DEFAULT_KEYS
    ]
    deltas = [-1 / fps, 0.0, 1 / fps]
    steps = [-1, 0, 1]
    delta_ts = {k: deltas for k in [*cams, *vec_keys]}
    ds = LeRobotDataset(repo_id, root=root, video_backend=backend, delta_timestamps=delta_ts)
    episodes = meta.episodes
    ep_from = {
        int(e): int(f) for e, f in zip(episodes["episode_index"], episodes["dataset_from_index"], strict=True)
    }
    ep_len = {int(e): int(n) for e, n in zip(episodes["episode_index"], episodes["length"], strict=True)}
    t0 = time.perf_counter()
    n = len(ds)
    for i in range(n):
        try:
            item = ds[i]
        except Exception as exc:
            rep.fail(f"[{tag}] ds[{i}] raised {type(exc).__name__}: {exc}")
            if i == 0:
                traceback.print_exc()
            continue
        rec = records.get(i)
        if rec is None:
            continue
        ep, fi = rec["ep"], rec["fi"]
        for j, d in enumerate(steps):
            target = fi + d
            pad = not 0 <= target < ep_len[ep]
            clamped = min(max(target, 0), ep_len[ep] - 1)
            src = records.get(ep_from[ep] + clamped)
            for k in [*cams, *vec_keys]:
                pad_key = f"{k}_is_pad"
                if pad_key not in item:
                    rep.fail(f"[{tag}] ds[{i}] lacks {pad_key}")
                elif bool(item[pad_key][j]) != pad:
                    rep.fail(f"[{tag}] ds[{i}] {pad_key}[{j}]={bool(item[pad_key][j])}, want {pad}")
            if src is None:
                continue
            for cam in cams:
                frames = item[cam]
                if frames.ndim != 4 or frames.shape[0] != 3:
                    rep.fail(f"[{tag}] ds[{i}][{cam}] shape {tuple(frames.shape)}, want (3,C,H,W)")
                    break
                if cam in src["depth"]:
                    if not torch.equal(frames[j], src["depth"][cam]):
                        rep.fail(
                            f"[{tag}] ds[{i}] (ep {ep} frame {fi}) {cam} delta {d:+d} != depth of frame {clamped}"
                        )
                    continue
                m = read_marker_chw(frames[j])
                if m != src["marker"].get(cam):
                    rep.fail(
                        f"[{tag}] ds[{i}] (ep {ep} frame {fi}) {cam} delta {d:+d}: marker {m}, "
                        f"want {src['marker'].get(cam)} (frame {clamped})"
                    )
            for k in vec_keys:
                v = item[k]
                if v.ndim < 1 or v.shape[0] != 3:
                    rep.fail(f"[{tag}] ds[{i}][{k}] shape {tuple(v.shape)}, want (3, ...)")
                    break
                if not torch.allclose(v[j], src["vec"][k]):
                    rep.fail(
                        f"[{tag}] ds[{i}] (ep {ep} frame {fi}) {k} delta {d:+d} != row of frame {clamped}"
                    )
    elapsed = time.perf_counter() - t0
    rep.timings[f"{tag}: full iteration with delta_timestamps ({n} items)"] = elapsed
    print(f"  [{tag}] iterated {n} items with delta_timestamps in {elapsed:.2f} s", flush=True)


def run_dataloader(ds, rep: Report, tag: str, num_workers: int) -> None:
    loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True, num_workers=num_workers)
    seen: list[int] = []
    t0 = time.perf_counter()
    nb = 0
    try:
        for batch in loader:
            nb += 1
            seen.extend(int(x) for x in batch["index"].reshape(-1))
            if nb == 1:
                shapes = {
                    k: tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                    for k, v in batch.items()
                }
                print(f"  [{tag}] first batch: {shapes}")
    except Exception as exc:
        rep.fail(f"[{tag}] DataLoader raised {type(exc).__name__}: {exc}")
        traceback.print_exc()
        return
    elapsed = time.perf_counter() - t0
    rep.timings[f"{tag}: DataLoader epoch (bs 8, workers {num_workers})"] = elapsed
    if sorted(seen) != list(range(len(ds))):
        rep.fail(f"[{tag}] DataLoader epoch saw {len(seen)} indices, not each of 0..{len(ds) - 1} once")
    print(f"  [{tag}] DataLoader: {nb} batches, {len(seen)} samples in {elapsed:.2f} s", flush=True)


def check_v21(root: Path, repo_id: str, task: str, rep: Report) -> None:
    """Structure-only check of a v2.1 dataset (lerobot 0.4.x reads v3.0 only), videos decoded with PyAV."""
    import av
    import pyarrow.parquet as pq

    print("== v2.1 structure check (lerobot 0.4.x cannot load v2.1)", flush=True)
    info = json.loads((root / "meta/info.json").read_text())
    for field in (
        "codebase_version",
        "robot_type",
        "total_episodes",
        "total_frames",
        "total_tasks",
        "total_videos",
        "total_chunks",
        "chunks_size",
        "fps",
        "splits",
        "data_path",
        "video_path",
        "features",
    ):
        if field not in info:
            rep.fail(f"v2.1 info.json lacks {field}")
    fps = info["fps"]
    feats = info["features"]
    cams = [k for k, v in feats.items() if v["dtype"] == "video"]
    non_video = [k for k, v in feats.items() if v["dtype"] != "video"]
    read_jsonl = lambda p: [json.loads(x) for x in (root / p).read_text().splitlines() if x.strip()]  # noqa: E731
    episodes = read_jsonl("meta/episodes.jsonl")
    tasks = read_jsonl("meta/tasks.jsonl")
    ep_stats = read_jsonl("meta/episodes_stats.jsonl")
    if [e["episode_index"] for e in episodes] != list(range(info["total_episodes"])):
        rep.fail("v2.1 episodes.jsonl episode_index is not 0..total_episodes-1")
    if len(tasks) != info["total_tasks"] or [t["task_index"] for t in tasks] != list(range(len(tasks))):
        rep.fail("v2.1 tasks.jsonl inconsistent with total_tasks")
    task_of = {t["task_index"]: t["task"] for t in tasks}
    if sum(e["length"] for e in episodes) != info["total_frames"]:
        rep.fail("v2.1 sum of lengths != total_frames")
    if [e["episode_index"] for e in ep_stats] != [e["episode_index"] for e in episodes]:
        rep.fail("v2.1 episodes_stats.jsonl rows don't match episodes.jsonl")
    for e in ep_stats:
        for k in feats:
            if k not in e["stats"]:
                rep.fail(f"v2.1 episodes_stats ep {e['episode_index']} lacks {k}")
            elif feats[k]["dtype"] == "video" and np.asarray(e["stats"][k]["mean"]).shape != (3, 1, 1):
                rep.fail(f"v2.1 episodes_stats ep {e['episode_index']} {k} mean not (3,1,1)")
    if info["total_videos"] != len(cams) * info["total_episodes"]:
        rep.fail(f"v2.1 total_videos {info['total_videos']} != cameras*episodes")
    index = 0
    for e in episodes:
        ep = e["episode_index"]
        chunk = ep // info["chunks_size"]
        path = root / info["data_path"].format(episode_chunk=chunk, episode_index=ep)
        table = pq.read_table(path)
        if sorted(table.column_names) != sorted(non_video):
            rep.fail(f"v2.1 {path.name} columns {table.column_names} != non-video features {non_video}")
        df = table.to_pandas()
        n = len(df)
        if n != e["length"]:
            rep.fail(f"v2.1 ep {ep}: {n} rows, length {e['length']}")
        if not (df["frame_index"].to_numpy() == np.arange(n)).all():
            rep.fail(f"v2.1 ep {ep}: frame_index not 0..n-1")
        if not (df["index"].to_numpy() == np.arange(index, index + n)).all():
            rep.fail(f"v2.1 ep {ep}: index not contiguous from {index}")
        if not (df["episode_index"].to_numpy() == ep).all():
            rep.fail(f"v2.1 ep {ep}: episode_index column wrong")
        if np.abs(df["timestamp"].to_numpy() - np.arange(n) / fps).max() > 1e-4:
            rep.fail(f"v2.1 ep {ep}: timestamp != frame_index/fps")
        want = e["tasks"][0] if task == "episode" else task
        if any(task_of.get(int(t)) != want for t in df["task_index"]):
            rep.fail(f"v2.1 ep {ep}: task_index does not map to {task!r}")
        index += n
        for cam in cams:
            vpath = root / info["video_path"].format(episode_chunk=chunk, video_key=cam, episode_index=ep)
            if not vpath.exists():
                rep.fail(f"v2.1 missing video {vpath}")
                continue
            markers, pts = [], []
            with av.open(str(vpath)) as container:
                stream = container.streams.video[0]
                for frame in container.decode(stream):
                    pts.append(float(frame.pts * stream.time_base))
                    rgb = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1).float() / 255
                    markers.append(read_marker_chw(rgb))
            if len(markers) != n:
                rep.fail(f"v2.1 ep {ep} {cam}: {len(markers)} video frames, {n} rows")
            bad_pts = [i for i, p in enumerate(pts) if abs(p - i / fps) > 1e-4]
            if bad_pts:
                rep.fail(f"v2.1 ep {ep} {cam}: pts != i/fps at frames {bad_pts[:5]} (first pts {pts[:3]})")
            half = 2 ** (MARKER_BITS - 1)
            offs = sorted({(m - i + half) % 2**MARKER_BITS - half for i, m in enumerate(markers)})
            print(
                f"  v2.1 ep {ep} {cam}: {len(markers)} frames, pts[0]={pts[0] if pts else None}, marker - frame_index in {offs}"
            )
            if len(offs) != 1:
                rep.fail(f"v2.1 ep {ep} {cam}: marker not frame_index + constant: {offs}")
    if index != info["total_frames"]:
        rep.fail("v2.1 total_frames mismatch")
    # lerobot 0.4.x must refuse it with BackwardCompatibilityError (not a crash elsewhere)
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    try:
        LeRobotDataset(repo_id, root=root)
        rep.fail("lerobot 0.4.x loaded a v2.1 dataset?!")
    except Exception as exc:
        print(
            f"  LeRobotDataset on v2.1 raised (expected) {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        )
        if type(exc).__name__ != "BackwardCompatibilityError":
            rep.fail(
                f"LeRobotDataset on v2.1 raised {type(exc).__name__}, expected BackwardCompatibilityError"
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path, help="dataset directory (contains meta/, data/, videos/)")
    ap.add_argument("--repo-id", default="local/ds")
    ap.add_argument(
        "--task",
        default="pick up the cube",
        help="expected task string of every frame, or 'episode': the episode's task in meta/episodes",
    )
    ap.add_argument("--backends", default="pyav,torchcodec")
    ap.add_argument("--no-delta", action="store_true")
    ap.add_argument(
        "--expect-offset",
        default="0",
        help="required marker - frame_index per episode (0 for the 30 Hz sample camera at 30 fps); 'any' = only constant",
    )
    ap.add_argument("--workers", type=int, default=0, help="DataLoader num_workers")
    ap.add_argument("--json", type=Path, help="write a summary here")
    args = ap.parse_args()
    root = args.root.resolve()

    import lerobot
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    print(
        f"lerobot {getattr(lerobot, '__version__', '?')}, torch {torch.__version__}, dataset {root}, HF_HOME={_HF_HOME}"
    )
    rep = Report()
    version = json.loads((root / "meta" / "info.json").read_text()).get("codebase_version")
    if version == "v2.1":
        try:
            check_v21(root, args.repo_id, args.task, rep)
        except Exception as exc:
            traceback.print_exc()
            rep.fail(f"v2.1 check raised {type(exc).__name__}: {exc}")
        print("  " + ("PASS" if not rep.failures else f"FAIL ({len(rep.failures)} failures)"))
        return 0 if not rep.failures else 1
    try:
        meta = check_metadata(args.repo_id, root, rep)
    except Exception as exc:
        traceback.print_exc()
        rep.fail(f"LeRobotDatasetMetadata raised {type(exc).__name__}: {exc}")
        meta = None

    if meta is not None:
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            print(f"== backend {backend}", flush=True)
            try:
                t0 = time.perf_counter()
                ds = LeRobotDataset(args.repo_id, root=root, video_backend=backend)
                rep.timings[f"{backend}: LeRobotDataset() init"] = time.perf_counter() - t0
                print(
                    f"  len={len(ds)} num_episodes={ds.num_episodes} fps={ds.fps} backend={getattr(ds, 'video_backend', None) or getattr(ds, '_video_backend', '?')}"
                )
                expect = None if args.expect_offset == "any" else int(args.expect_offset)
                records = iterate_all(ds, meta, backend, args.task, rep, backend, expect)
                if not args.no_delta:
                    iterate_delta(root, args.repo_id, meta, backend, records, rep, f"{backend}+delta")
                run_dataloader(ds, rep, backend, args.workers)
            except Exception as exc:
                traceback.print_exc()
                rep.fail(f"[{backend}] raised {type(exc).__name__}: {exc}")
        try:
            check_depth_metres(root, args.repo_id, meta, rep)
        except Exception as exc:
            traceback.print_exc()
            rep.fail(f"depth in metres raised {type(exc).__name__}: {exc}")

    print("== summary")
    for k, v in rep.timings.items():
        print(f"  time  {k}: {v:.2f} s")
    for n in rep.notes:
        print(f"  note  {n}")
    status = "PASS" if not rep.failures else f"FAIL ({len(rep.failures)} failures)"
    print(f"  {status}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "root": str(root),
                    "passed": not rep.failures,
                    "failures": rep.failures[:500],
                    "notes": rep.notes,
                    "timings_s": rep.timings,
                    "mappings": rep.mappings,
                },
                indent=2,
            )
        )
    return 0 if not rep.failures else 1


if __name__ == "__main__":
    sys.exit(main())
