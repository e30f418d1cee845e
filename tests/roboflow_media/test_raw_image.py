"""decode_raw_image: every encoding, step padding, byte order, errors."""

from __future__ import annotations

import numpy as np
import pytest

from roboflow_core.errors import MediaError
from roboflow_media import decode_raw_image

H, W = 4, 6
RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
ALPHA = RNG.integers(0, 256, (H, W, 1), dtype=np.uint8)
MONO16 = RNG.integers(0, 65536, (H, W, 1), dtype=np.uint16)


def _padded(pixels: np.ndarray, pad: int) -> tuple[bytes, int]:
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    padded = np.concatenate([rows, np.zeros((rows.shape[0], pad), np.uint8)], axis=1)
    return padded.tobytes(), padded.shape[1]


@pytest.mark.parametrize(
    ("encoding", "raw", "expected"),
    [
        ("rgb8", RGB, RGB),
        ("bgr8", RGB[..., ::-1], RGB),
        ("8UC3", RGB[..., ::-1], RGB),
        ("rgba8", np.concatenate([RGB, ALPHA], -1), RGB),
        ("bgra8", np.concatenate([RGB[..., ::-1], ALPHA], -1), RGB),
        ("mono8", RGB[..., :1], RGB[..., :1]),
        ("mono16", MONO16, MONO16),
        ("16UC1", MONO16, MONO16),
        ("32FC1", MONO16.astype(np.float32) / 7, MONO16.astype(np.float32) / 7),
    ],
)
@pytest.mark.parametrize("pad", [0, 5])
def test_encodings_decode_to_rgb_order(
    encoding: str, raw: np.ndarray, expected: np.ndarray, pad: int
) -> None:
    data, step = _padded(np.ascontiguousarray(raw), pad)
    image = decode_raw_image(data, height=H, width=W, encoding=encoding, step=step)
    assert image.dtype == expected.dtype
    np.testing.assert_array_equal(image, expected)


def test_rgb8_is_a_view_without_copy() -> None:
    data = bytearray(RGB.tobytes())
    image = decode_raw_image(data, height=H, width=W, encoding="bgr8", step=W * 3)
    data[0] = 255 - data[0]
    assert image[0, 0, 2] == data[0]


def test_big_endian_mono16_becomes_native_uint16() -> None:
    data = MONO16.astype(">u2").tobytes()
    image = decode_raw_image(data, height=H, width=W, encoding="mono16", step=W * 2, is_bigendian=True)
    assert image.dtype == np.uint16
    assert image.dtype.isnative
    np.testing.assert_array_equal(image, MONO16)


@pytest.mark.parametrize(
    ("pattern", "cell"),
    [("rggb", [[10, 20], [40, 90]]), ("bggr", [[90, 40], [20, 10]]), ("grbg", [[20, 10], [90, 40]])],
)
def test_bayer_cells_become_rgb_blocks(pattern: str, cell: list[list[int]]) -> None:
    raw = np.tile(np.array(cell, np.uint8), (2, 3))
    image = decode_raw_image(raw.tobytes(), height=4, width=6, encoding=f"bayer_{pattern}8", step=6)
    assert image.shape == (4, 6, 3)
    np.testing.assert_array_equal(image[1, 1], [10, 30, 90])  # green = mean(20, 40)
    assert (image == image[0, 0]).all()


def test_short_data_names_expected_size() -> None:
    with pytest.raises(
        MediaError, match=r"image data is 100 bytes, expected height\*step = 921600 \(640x480 rgb8"
    ):
        decode_raw_image(b"\0" * 100, height=480, width=640, encoding="rgb8", step=1920)


def test_unknown_encoding_is_named() -> None:
    with pytest.raises(MediaError, match="'yuv422'"):
        decode_raw_image(b"\0" * 48, height=4, width=6, encoding="yuv422", step=12)


def test_step_smaller_than_row_is_rejected() -> None:
    with pytest.raises(MediaError, match="step 10 is smaller than a row of 18 bytes"):
        decode_raw_image(b"\0" * 100, height=4, width=6, encoding="rgb8", step=10)
