"""Streaming statistics against numpy on known data."""

from __future__ import annotations

import numpy as np
import pytest

from roboflow_dataset.stats import QUANTILES, STAT_NAMES, FeatureStats, ImageStats, VectorStats, aggregate


def _vector_stats(values: np.ndarray, chunk: int = 7, **kwargs: int) -> FeatureStats:
    stats = VectorStats(values.shape[1], **kwargs)
    for start in range(0, len(values), chunk):
        stats.update(values[start : start + chunk])
    return stats.result()


def test_vector_stats_match_numpy() -> None:
    values = np.random.default_rng(1).normal(3.0, 2.0, size=(500, 4)).astype(np.float32)
    stats = _vector_stats(values)
    assert list(stats) == list(STAT_NAMES)
    assert stats["count"] == [500]
    np.testing.assert_array_equal(stats["min"], values.min(axis=0))
    np.testing.assert_array_equal(stats["max"], values.max(axis=0))
    np.testing.assert_allclose(stats["mean"], values.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats["std"], values.astype(np.float64).std(axis=0), rtol=1e-10)
    for name, q in QUANTILES.items():
        np.testing.assert_allclose(stats[name], np.quantile(values.astype(np.float64), q, axis=0))


def test_vector_stats_keep_int_min_max_and_accept_1d() -> None:
    stats = VectorStats(1)
    stats.update(np.arange(10, dtype=np.int64))
    result = stats.result()
    assert result["min"] == [0] and isinstance(result["min"][0], int)
    assert result["max"] == [9]
    assert result["mean"] == [4.5]


def test_vector_stats_quantiles_from_bounded_reservoir() -> None:
    values = np.random.default_rng(2).uniform(0, 1, size=(20_000, 2))
    stats = _vector_stats(values, chunk=999, reservoir=2_000)
    np.testing.assert_allclose(stats["mean"], values.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats["q50"], [0.5, 0.5], atol=0.05)
    np.testing.assert_allclose(stats["q99"], [0.99, 0.99], atol=0.02)


def test_vector_stats_reject_wrong_width_and_empty() -> None:
    stats = VectorStats(3)
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        stats.update(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="no rows"):
        stats.result()


def test_image_stats_match_numpy_over_sampled_pixels() -> None:
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, size=(20, 48, 64, 3), dtype=np.uint8)
    stats = ImageStats()
    for frame in frames:
        stats.update(frame)
    result = stats.result()
    pixels = frames.reshape(-1, 3).astype(np.float64) / 255.0  # 64 px < 300: no striding, all frames
    assert result["count"] == [20]
    for name in ("min", "max", "mean", "std", *QUANTILES):
        assert np.asarray(result[name]).shape == (3, 1, 1)
    np.testing.assert_allclose(np.ravel(result["mean"]), pixels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(np.ravel(result["std"]), pixels.std(axis=0), rtol=1e-9)
    np.testing.assert_array_equal(np.ravel(result["min"]), pixels.min(axis=0))
    np.testing.assert_array_equal(np.ravel(result["max"]), pixels.max(axis=0))
    for name, q in QUANTILES.items():
        expected = np.quantile(pixels, q, axis=0, method="inverted_cdf")
        np.testing.assert_allclose(np.ravel(result[name]), expected)


def test_image_stats_count_every_level_across_batches_and_checkpoints() -> None:
    """280x280 frames (not strided) hold 78,400 levels a channel: counted in several batches, with a
    checkpoint between two, the histogram and the moments in the state are exactly the pixels'."""
    rng = np.random.default_rng(11)
    frames = (rng.normal([60, 128, 200], 40, size=(12, 280, 280, 3))).clip(0, 255).astype(np.uint8)
    stats = ImageStats()
    for i, frame in enumerate(frames):
        stats.update(frame)
        if i == 5:
            stats = ImageStats.from_state(stats.state())
    pixels = frames.reshape(-1, 3).astype(np.int64)
    state = stats.state()
    hist = [np.bincount(pixels[:, c], minlength=256) for c in range(3)]
    np.testing.assert_array_equal(state["hist"], hist)
    np.testing.assert_array_equal(state["sum"], pixels.sum(axis=0))
    np.testing.assert_array_equal(state["sum_sq"], (pixels**2).sum(axis=0))
    np.testing.assert_array_equal(state["min"], pixels.min(axis=0))
    np.testing.assert_array_equal(state["max"], pixels.max(axis=0))
    result = stats.result()
    assert result["count"] == [12]
    np.testing.assert_allclose(np.ravel(result["mean"]), pixels.mean(axis=0) / 255, rtol=1e-12)
    np.testing.assert_allclose(np.ravel(result["std"]), pixels.std(axis=0) / 255, rtol=1e-9)


def test_image_stats_count_every_frame_at_a_pixel_stride() -> None:
    stats = ImageStats()
    frame = np.zeros((600, 900, 3), dtype=np.uint8)
    frame[::6, ::6] = 255  # exactly the pixels a stride of 900 // 150 = 6 keeps
    for _ in range(300):
        stats.update(frame)
    result = stats.result()
    assert result["count"] == [300]
    assert np.ravel(result["mean"]).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("height", "width", "layout"),
    [
        (480, 640, "contiguous"),  # stride 4, rows of whole 4-byte words: pixels read as words
        (480, 640, "strided"),  # the same frames as a view into wider rows: per channel
        (480, 640, "unaligned"),  # a view at an odd address (a payload in its chunk): words still
        (720, 1280, "contiguous"),  # stride 8
        (480, 606, "contiguous"),  # stride 4 but rows end mid-word: per channel
        (300, 450, "contiguous"),  # stride 3
    ],
)
def test_image_stats_count_exactly_the_strided_pixels(height: int, width: int, layout: str) -> None:
    """Whichever way the strided pixels are gathered, the histogram is exactly theirs (and the
    last pixel of a row, or the byte after each, is never counted for a neighbour's)."""
    rng = np.random.default_rng(height + width)
    frames = rng.integers(0, 256, size=(5, height, width + 4, 3), dtype=np.uint8)
    frames = frames[:, :, :width] if layout == "strided" else np.ascontiguousarray(frames[:, :, :width])
    if layout == "unaligned":
        frames = np.frombuffer(b"\0" + frames.tobytes(), np.uint8, offset=1).reshape(frames.shape)
        assert frames[0].ctypes.data % 4 and frames[0].flags.c_contiguous
    stats = ImageStats()
    for frame in frames:
        stats.update(frame)
    stride = max(height, width) // 150
    kept = frames[:, ::stride, ::stride].reshape(-1, 3)
    expected = [np.bincount(kept[:, c], minlength=256) for c in range(3)]
    np.testing.assert_array_equal(stats.state()["hist"], expected)


def test_image_stats_weigh_late_frames_like_early_ones() -> None:
    """A camera that brightens over a long episode: the mean is that of all its frames."""
    stats = ImageStats()
    levels = np.linspace(0, 255, 1_000).round().astype(np.uint8)
    for level in levels:
        stats.update(np.full((6, 8, 3), level, dtype=np.uint8))
    result = stats.result()
    np.testing.assert_allclose(np.ravel(result["mean"]), levels.mean() / 255.0, rtol=1e-12)
    np.testing.assert_allclose(np.ravel(result["std"]), levels.std() / 255.0, rtol=1e-9)


@pytest.mark.parametrize(("unit", "dtype", "per_mm"), [("mm", np.uint16, 1.0), ("m", np.float32, 1e-3)])
def test_depth_stats_are_raw_values_in_their_unit(unit: str, dtype: type, per_mm: float) -> None:
    rng = np.random.default_rng(9)
    millimetres = rng.integers(0, 12_000, size=(30, 40, 50, 1))
    frames = (millimetres * per_mm).astype(dtype)
    stats = ImageStats()
    for frame in frames:
        stats.update(frame, depth_unit=unit)
    result = stats.result()
    values = frames.astype(np.float64).reshape(-1)  # 50 px < 300: no striding
    assert stats.depth_unit == unit
    assert result["count"] == [30]
    for name in ("min", "max", "mean", "std", *QUANTILES):
        assert np.asarray(result[name]).shape == (1, 1, 1)
    np.testing.assert_allclose(np.ravel(result["mean"]), values.mean(), rtol=1e-9)
    np.testing.assert_allclose(np.ravel(result["std"]), values.std(), rtol=1e-9)
    np.testing.assert_allclose(np.ravel(result["min"]), values.min())
    np.testing.assert_allclose(np.ravel(result["max"]), values.max())
    for name, q in QUANTILES.items():  # exact for millimetres, to the millimetre for metres
        expected = np.quantile(values, q, method="inverted_cdf")
        np.testing.assert_allclose(np.ravel(result[name]), expected, atol=0.5 * per_mm + 1e-9)
    with pytest.raises(ValueError, match="the first was"):
        stats.update(np.zeros((40, 50, 3), dtype=np.uint8))


def test_image_stats_grey_frames_fill_three_channels() -> None:
    stats = ImageStats()
    stats.update(np.full((4, 4, 1), 51, dtype=np.uint8))
    assert np.ravel(stats.result()["mean"]).tolist() == pytest.approx([0.2, 0.2, 0.2])
    with pytest.raises(ValueError, match="uint8"):
        stats.update(np.zeros((4, 4, 3), dtype=np.float32))


def test_aggregate_matches_stats_over_the_concatenation() -> None:
    rng = np.random.default_rng(4)
    episodes = [rng.normal(i, 1 + i, size=(n, 3)) for i, n in enumerate((50, 120, 7))]
    merged = aggregate([{"x": _vector_stats(e)} for e in episodes])["x"]
    whole = np.concatenate(episodes)
    assert merged["count"] == [len(whole)]
    np.testing.assert_array_equal(merged["min"], whole.min(axis=0))
    np.testing.assert_array_equal(merged["max"], whole.max(axis=0))
    np.testing.assert_allclose(merged["mean"], whole.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(merged["std"], whole.std(axis=0), rtol=1e-10)
    weights = np.array([len(e) for e in episodes]) / len(whole)
    expected_q50 = sum(w * np.quantile(e, 0.5, axis=0) for w, e in zip(weights, episodes, strict=True))
    np.testing.assert_allclose(merged["q50"], expected_q50)


def test_aggregate_is_associative_and_handles_images() -> None:
    rng = np.random.default_rng(5)
    parts = []
    for _ in range(3):
        stats = ImageStats()
        for frame in rng.integers(0, 256, size=(5, 8, 8, 3), dtype=np.uint8):
            stats.update(frame)
        parts.append({"cam": stats.result()})
    at_once = aggregate(parts)["cam"]
    stepwise = aggregate([aggregate(parts[:2]), parts[2]])["cam"]
    assert at_once["count"] == [15]
    for name in STAT_NAMES:
        np.testing.assert_allclose(at_once[name], stepwise[name], rtol=1e-12)
        assert np.asarray(at_once[name]).shape == ((1,) if name == "count" else (3, 1, 1))
