"""Streaming per-episode statistics with bounded memory, and their aggregation.

Every accumulator returns its result as ``{stat: list}`` with the stats LeRobot expects
(``min, max, mean, std, count, q01, q10, q50, q90, q99``), ready for JSON or the episodes parquet:

- :class:`VectorStats` takes ``(n, d)`` chunks of a numeric feature. min/max/mean/std are exact
  (chunk moments merged with Chan's parallel formula); quantiles come from a bounded, seeded
  reservoir of rows, so they are exact up to ``reservoir`` rows and a uniform sample beyond. The
  sample is a function of the seed and the row index only, whatever the chunking.
- :class:`ImageStats` takes every frame of one camera and counts a pixel-strided view of each
  in a histogram per channel, so every stat over those pixels of the whole episode is exact
  (colour scaled to [0, 1], shape (3, 1, 1); depth in its own unit, shape (1, 1, 1)).
- :func:`aggregate` combines per-episode results into dataset-wide ones.

Both accumulators can be checkpointed: ``state()`` gives numpy arrays (for an ``.npz``) from
which ``from_state()`` rebuilds an accumulator that continues exactly where the first one was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "QUANTILES",
    "STAT_NAMES",
    "FeatureStats",
    "ImageStats",
    "StatsState",
    "VectorStats",
    "aggregate",
]

FeatureStats = dict[str, list[Any]]
"""One feature's statistics: stat name -> JSON-ready (nested) list."""

StatsState = dict[str, npt.NDArray[Any]]
"""An accumulator's complete state: name -> array (scalars as 0-d arrays), ready for ``np.savez``."""

QUANTILES: dict[str, float] = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
STAT_NAMES: tuple[str, ...] = ("min", "max", "mean", "std", "count", *QUANTILES)

_TARGET_PIXELS = 150
"""Cameras: frames are strided down to about this many pixels along the longer side."""
_HELD_PIXELS = 1 << 18
"""Colour cameras: strided pixels held before they are counted (13 frames of 640x480)."""


class VectorStats:
    """Running statistics of a numeric feature of shape ``(d,)``.

    Args:
        dim: Length of the feature vector.
        reservoir: Rows kept for the quantiles (memory is ``reservoir * dim`` floats).
        seed: Seed of the reservoir sampling: row ``i`` takes slot ``hash(seed, i) % (i + 1)``,
            so the sample depends on neither the chunking nor any generator state.
    """

    def __init__(self, dim: int, *, reservoir: int = 10_000, seed: int = 0) -> None:
        self._dim = dim
        self._capacity = reservoir
        self._seed = seed
        self._count = 0
        self._mean = np.zeros(dim)
        self._m2 = np.zeros(dim)
        self._min: npt.NDArray[Any] | None = None
        self._max: npt.NDArray[Any] | None = None
        self._sample = np.empty((0, dim))

    @property
    def count(self) -> int:
        """Rows seen so far."""
        return self._count

    def update(self, chunk: npt.ArrayLike) -> None:
        """Add a chunk of rows.

        Args:
            chunk: ``(n, d)`` values (``(n,)`` is accepted when ``d == 1``). Integer and bool
                features keep their dtype for min and max.

        Raises:
            ValueError: The chunk does not have ``d`` columns.
        """
        rows = np.asarray(chunk)
        if rows.ndim == 1 and self._dim == 1:
            rows = rows[:, None]
        if rows.ndim != 2 or rows.shape[1] != self._dim:
            raise ValueError(f"expected rows of shape (n, {self._dim}), got {rows.shape}")
        n = rows.shape[0]
        if n == 0:
            return
        if rows.dtype == np.bool_:
            rows = rows.astype(np.int64)
        chunk_min, chunk_max = rows.min(axis=0), rows.max(axis=0)
        self._min = chunk_min if self._min is None else np.minimum(self._min, chunk_min)
        self._max = chunk_max if self._max is None else np.maximum(self._max, chunk_max)
        values = rows.astype(np.float64)
        chunk_mean = values.mean(axis=0)
        chunk_m2 = ((values - chunk_mean) ** 2).sum(axis=0)
        total = self._count + n
        delta = chunk_mean - self._mean
        self._mean = self._mean + delta * (n / total)
        self._m2 = self._m2 + chunk_m2 + delta**2 * (self._count * n / total)
        self._sample_rows(values)
        self._count = total

    def _sample_rows(self, values: npt.NDArray[np.float64]) -> None:
        """Reservoir sampling (algorithm R), vectorised over the chunk."""
        free = self._capacity - self._sample.shape[0]
        if free > 0:
            self._sample = np.concatenate([self._sample, values[:free]])
        rest = values[max(free, 0) :]
        if rest.shape[0] == 0:
            return
        seen = self._count + max(free, 0) + np.arange(rest.shape[0], dtype=np.int64)
        slots = _reservoir_slots(self._seed, seen)
        keep = slots < self._capacity
        self._sample[slots[keep]] = rest[keep]  # repeated slots: the later row wins, as in order

    def state(self) -> StatsState:
        """Everything needed to continue: see :meth:`from_state`."""
        state: StatsState = {
            "dim": np.array(self._dim),
            "reservoir": np.array(self._capacity),
            "seed": np.array(self._seed),
            "count": np.array(self._count),
            "mean": self._mean.copy(),
            "m2": self._m2.copy(),
            "sample": _narrowed(self._sample),
        }
        if self._min is not None and self._max is not None:
            state.update(min=self._min.copy(), max=self._max.copy())
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, npt.NDArray[Any]]) -> VectorStats:
        """An accumulator equal to the one whose :meth:`state` this was (dtypes included).

        Raises:
            ValueError: The state is incomplete or inconsistent.
        """
        try:
            stats = cls(int(state["dim"]), reservoir=int(state["reservoir"]), seed=int(state["seed"]))
            stats._count = int(state["count"])
            stats._mean = np.asarray(state["mean"], dtype=np.float64)
            stats._m2 = np.asarray(state["m2"], dtype=np.float64)
            stats._sample = np.asarray(state["sample"], dtype=np.float64)
            if "min" in state:
                stats._min, stats._max = np.asarray(state["min"]), np.asarray(state["max"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a VectorStats state: {err!r}") from err
        shapes = (stats._mean.shape, stats._m2.shape, stats._sample.shape[1:])
        kept = min(stats._count, stats._capacity)
        empty = stats._count == 0
        if shapes != ((stats._dim,),) * 3 or stats._sample.shape[0] != kept or (stats._min is None) != empty:
            raise ValueError(f"inconsistent VectorStats state: dim {stats._dim}, shapes {shapes}")
        return stats

    def result(self) -> FeatureStats:
        """The statistics so far.

        Raises:
            ValueError: No rows were added.
        """
        if self._min is None or self._max is None:
            raise ValueError("no rows were added")
        std = np.sqrt(self._m2 / self._count)
        quantiles = np.quantile(self._sample, list(QUANTILES.values()), axis=0)
        stats: FeatureStats = {
            "min": self._min.tolist(),
            "max": self._max.tolist(),
            "mean": self._mean.tolist(),
            "std": std.tolist(),
            "count": [self._count],
        }
        stats.update({name: q.tolist() for name, q in zip(QUANTILES, quantiles, strict=True)})
        return stats


class ImageStats:
    """Per-channel statistics of one camera over every frame of the episode.

    Each frame is strided down to about 150 pixels along its longer side (as LeRobot's
    streaming encoder does) and every pixel left is counted, so a camera whose content drifts
    over the episode gets the statistics of the whole episode. The kind of camera comes from
    the first frame:

    - colour or gray ``uint8``: a 256-bin histogram per channel, values scaled to [0, 1], each
      stat of shape (3, 1, 1) (gray counts for all three channels). The levels are held and
      counted a batch at a time; :meth:`state` and :meth:`result` count those held first;
    - depth (:meth:`update` with ``depth_unit``): the raw values in their own unit, as LeRobot
      0.6 computes depth stats (no scaling), each stat of shape (1, 1, 1). ``uint16`` millimetres
      are counted exactly in a 65536-bin histogram; ``float32`` metres are binned at 1 mm for the
      quantiles (min, max, mean and std stay exact).

    ``count`` is the number of frames.
    """

    def __init__(self) -> None:
        self._frames = 0
        self._unit = ""
        self._hist = np.zeros((0, 0), dtype=np.int64)
        self._sum = np.zeros(0)
        self._sum_sq = np.zeros(0)
        self._min = np.zeros(0)
        self._max = np.zeros(0)
        self._pixels = np.empty(0, dtype=np.uint32)  # held pixels, 4 bytes each: R, G, B, unused
        self._held = 0

    def state(self) -> StatsState:
        """Everything needed to continue: see :meth:`from_state`."""
        self._settle()
        return {
            "frames": np.array(self._frames),
            "unit": np.array(self._unit),
            "hist": self._hist.copy(),
            "sum": self._sum.copy(),
            "sum_sq": self._sum_sq.copy(),
            "min": self._min.copy(),
            "max": self._max.copy(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, npt.NDArray[Any]]) -> ImageStats:
        """An accumulator equal to the one whose :meth:`state` this was.

        Raises:
            ValueError: The state is incomplete or inconsistent.
        """
        stats = cls()
        if "sampled" in state:  # the sampling accumulator of earlier versions cannot continue exactly
            raise ValueError("an ImageStats state of an earlier version (sampled frames): convert afresh")
        try:
            stats._frames, stats._unit = int(state["frames"]), str(state["unit"])
            stats._hist = np.asarray(state["hist"], dtype=np.int64)
            stats._sum, stats._sum_sq = np.asarray(state["sum"]), np.asarray(state["sum_sq"])
            stats._min, stats._max = np.asarray(state["min"]), np.asarray(state["max"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not an ImageStats state: {err!r}") from err
        if stats._frames and (stats._unit not in _SCALES or stats._hist.shape != _HIST_SHAPES[stats._unit]):
            raise ValueError(f"inconsistent ImageStats state: {stats._unit!r}, histogram {stats._hist.shape}")
        return stats

    @property
    def count(self) -> int:
        """Frames counted so far."""
        return self._frames

    @property
    def depth_unit(self) -> Literal["mm", "m"] | None:
        """``mm`` or ``m`` for a depth camera, ``None`` for colour (or before the first frame)."""
        if self._unit == "mm":
            return "mm"
        return "m" if self._unit == "m" else None

    def update(self, frame: npt.NDArray[Any], *, depth_unit: Literal["mm", "m"] | None = None) -> None:
        """Count the next frame of the episode.

        Args:
            frame: ``(H, W, 3)`` or ``(H, W, 1)`` uint8; for depth ``(H, W, 1)`` ``uint16``
                (``depth_unit="mm"``) or ``float32`` (``depth_unit="m"``, finite values).
            depth_unit: ``None`` for colour, else the depth unit.

        Raises:
            ValueError: The frame does not fit the kind of camera of the first one.
        """
        unit = depth_unit or "rgb"
        want = _DTYPES.get(unit)
        channels_ok = frame.ndim == 3 and frame.shape[2] in ((1, 3) if unit == "rgb" else (1,))
        if want is None or frame.dtype != want or not channels_ok:
            raise ValueError(
                f"expected an (H, W, 1|3) uint8 frame or (H, W, 1) depth, got {frame.shape} {frame.dtype}"
            )
        if self._frames == 0:
            self._start(unit)
        elif unit != self._unit:
            raise ValueError(f"frame {self._frames} is {unit!r}, the first was {self._unit!r}")
        stride = max(1, max(frame.shape[:2]) // _TARGET_PIXELS)
        if unit == "rgb":
            self._add_levels(frame, stride)
        else:
            self._add_depth(frame[::stride, ::stride].reshape(-1, 1), unit)
        self._frames += 1

    def _add_levels(self, frame: npt.NDArray[np.uint8], stride: int) -> None:
        """Colour: the strided pixels wait, four bytes each (R, G, B, unused), to be counted a batch
        at a time (see :meth:`_settle`); gray counts as the level of every channel.

        Where every strided pixel starts on a 4-byte boundary of a contiguous RGB frame (``stride``
        and the width multiples of 4, as for 640x480 or 1280x720), each is copied as one 4-byte word
        (its RGB and the next pixel's R, never counted): one strided copy instead of one per channel."""
        height, width, channels = frame.shape
        held_height, held_width = -(-height // stride), -(-width // stride)
        count = held_height * held_width
        if self._held + count > len(self._pixels):
            self._settle()
            self._pixels = np.empty(max(count, _HELD_PIXELS), dtype=np.uint32)
        held = self._pixels[self._held : self._held + count].reshape(held_height, held_width)
        if channels == 3 and stride % 4 == 0 and width % 4 == 0 and frame.flags.c_contiguous:
            held[...] = frame.reshape(height, width * 3).view(np.uint32)[::stride, :: stride * 3 // 4]
        else:
            held.view(np.uint8).reshape(held_height, held_width, 4)[..., :3] = frame[::stride, ::stride]
        self._held += count

    def _settle(self) -> None:
        """Colour: count the pixels held in the histogram (Pillow counts a batch's three channels in
        one C loop over the held words, in place), and take the moments from it: one histogram gives
        every stat exactly (sums of integers below 2**53 are exact in float64, in any order)."""
        if self._unit != "rgb":
            return
        if self._held:
            from PIL import Image  # here, in a camera's encoder thread: not in a conversion's start-up

            held = Image.frombuffer("RGBX", (self._held, 1), self._pixels[: self._held], "raw", "RGBX", 0, 1)
            self._hist += np.asarray(held.histogram()[: 3 * 256], dtype=np.int64).reshape(3, 256)
            self._held = 0
        levels = np.arange(self._hist.shape[1], dtype=np.float64)
        self._sum = (self._hist * levels).sum(axis=1)  # multiplied and summed, not ``@``: BLAS would
        self._sum_sq = (self._hist * (levels * levels)).sum(axis=1)  # wake its threads to spin
        seen = self._hist > 0
        self._min = seen.argmax(axis=1).astype(np.float64)
        self._max = (len(levels) - 1 - seen[:, ::-1].argmax(axis=1)).astype(np.float64)

    def _add_depth(self, raw: npt.NDArray[Any], unit: str) -> None:
        """Depth, ``(N, 1)``: exact moments of the values; the histogram counts millimetres (metres
        binned at 1 mm)."""
        values = raw.astype(np.float64)
        self._sum += values.sum(axis=0)
        self._sum_sq += (values**2).sum(axis=0)
        self._min = np.minimum(self._min, values.min(axis=0))
        self._max = np.maximum(self._max, values.max(axis=0))
        bins = self._hist.shape[1]
        column = raw[:, 0]
        if unit == "m":
            column = np.clip(np.rint(column * 1000.0), 0, bins - 1).astype(np.int64)
        self._hist[0] += np.bincount(column, minlength=bins)

    def _start(self, unit: str) -> None:
        self._unit = unit
        self._hist = np.zeros(_HIST_SHAPES[unit], dtype=np.int64)
        channels = self._hist.shape[0]
        self._sum, self._sum_sq = np.zeros(channels), np.zeros(channels)
        self._min, self._max = np.full(channels, np.inf), np.full(channels, -np.inf)

    def result(self) -> FeatureStats:
        """The statistics so far, each stat shaped (3, 1, 1) (colour) or (1, 1, 1) (depth).

        Quantile ``q`` is the smallest histogram level whose cumulative count reaches ``q`` of
        the pixels.

        Raises:
            ValueError: No frame was added.
        """
        if self._frames == 0:
            raise ValueError("no frames were added")
        self._settle()
        scale, bin_scale = _SCALES[self._unit]
        total = self._hist.sum(axis=1)
        mean = self._sum / total
        var = self._sum_sq / total - mean**2
        cdf = np.cumsum(self._hist, axis=1)
        per_channel: dict[str, npt.NDArray[np.float64]] = {
            "min": self._min / scale,
            "max": self._max / scale,
            "mean": mean / scale,
            "std": np.sqrt(np.maximum(var, 0.0)) / scale,
        }
        for name, q in QUANTILES.items():
            rank = np.array([c.searchsorted(q * t) for c, t in zip(cdf, total, strict=True)])
            per_channel[name] = rank / bin_scale
        channels = self._hist.shape[0]
        stats: FeatureStats = {k: v.reshape(channels, 1, 1).tolist() for k, v in per_channel.items()}
        stats["count"] = [self._frames]
        return {name: stats[name] for name in STAT_NAMES}


_DTYPES = {"rgb": np.dtype(np.uint8), "mm": np.dtype(np.uint16), "m": np.dtype(np.float32)}
_HIST_SHAPES = {"rgb": (3, 256), "mm": (1, 65536), "m": (1, 65536)}
_SCALES = {"rgb": (255.0, 255.0), "mm": (1.0, 1.0), "m": (1.0, 1000.0)}
"""Divisors of (pixel values, histogram bins) that give the stats: colour /255 to [0, 1]; depth in
its own unit (the histogram counts millimetres)."""


_MASK64 = 2**64 - 1


def _narrowed(values: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
    """``values`` as float32 where that loses nothing (float32 features: half the state)."""
    narrow = values.astype(np.float32)
    return narrow if np.array_equal(narrow, values) else values.copy()


def _reservoir_slots(seed: int, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Slot in ``[0, i]`` for each row index ``i``: splitmix64 of ``(seed, i)``, modulo ``i + 1``."""
    x = rows.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15) & _MASK64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return (x % (rows.astype(np.uint64) + np.uint64(1))).astype(np.int64)


def aggregate(episode_stats: Sequence[Mapping[str, FeatureStats]]) -> dict[str, FeatureStats]:
    """Combine per-episode statistics into dataset-wide ones.

    min of mins, max of maxes, count-weighted mean, std by the parallel-variance formula, and
    count-weighted quantiles (as LeRobot ≤ 0.6.1 aggregates them). Features missing from some
    episodes are aggregated over the episodes that have them.

    Args:
        episode_stats: One ``{feature: stats}`` mapping per episode (or per already-aggregated
            group: aggregation is associative).

    Returns:
        ``{feature: stats}`` with JSON-ready lists.
    """
    features: dict[str, list[Mapping[str, Any]]] = {}
    for stats in episode_stats:
        for feature, values in stats.items():
            features.setdefault(feature, []).append(values)
    return {feature: _aggregate_feature(parts) for feature, parts in features.items()}


def _aggregate_feature(parts: Sequence[Mapping[str, Any]]) -> FeatureStats:
    counts = np.array([np.asarray(p["count"]).reshape(-1)[0] for p in parts], dtype=np.int64)
    means = np.stack([np.asarray(p["mean"], dtype=np.float64) for p in parts])
    weights = (counts / counts.sum()).reshape(-1, *([1] * (means.ndim - 1)))
    mean = (means * weights).sum(axis=0)
    stds = np.stack([np.asarray(p["std"], dtype=np.float64) for p in parts])
    variance = ((stds**2 + (means - mean) ** 2) * weights).sum(axis=0)
    result: FeatureStats = {
        "min": np.min(np.stack([np.asarray(p["min"]) for p in parts]), axis=0).tolist(),
        "max": np.max(np.stack([np.asarray(p["max"]) for p in parts]), axis=0).tolist(),
        "mean": mean.tolist(),
        "std": np.sqrt(variance).tolist(),
        "count": [int(counts.sum())],
    }
    for name in QUANTILES:
        if all(name in p for p in parts):
            stacked = np.stack([np.asarray(p[name], dtype=np.float64) for p in parts])
            result[name] = (stacked * weights).sum(axis=0).tolist()
    return result
