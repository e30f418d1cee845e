"""decode_compressed_image: JPEG/PNG round trips, compressedDepth, corrupt input."""

from __future__ import annotations

import struct
from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from roboflow_core.errors import MediaError
from roboflow_media import decode_compressed_image

Y, X = np.mgrid[0:48, 0:64]
SMOOTH = np.stack([X * 4, Y * 5, (X + Y) * 2], axis=-1).astype(np.uint8)


def _encode(pixels: np.ndarray, fmt: str, **kwargs: object) -> bytes:
    buffer = BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["jpeg", "rgb8; jpeg compressed bgr8"])
def test_jpeg_round_trip(fmt: str) -> None:
    image = decode_compressed_image(_encode(SMOOTH, "JPEG", quality=95), fmt)
    assert image.shape == (48, 64, 3)
    assert image.dtype == np.uint8
    assert np.abs(image.astype(int) - SMOOTH).mean() < 2


def test_png_is_lossless() -> None:
    np.testing.assert_array_equal(decode_compressed_image(_encode(SMOOTH, "PNG"), "png"), SMOOTH)


def test_gray_jpeg_has_one_channel() -> None:
    image = decode_compressed_image(_encode(SMOOTH[..., 0], "JPEG"), "mono8; jpeg compressed mono8")
    assert image.shape == (48, 64, 1)


def test_compressed_depth_png_keeps_uint16() -> None:
    depth = (np.arange(48 * 64, dtype=np.uint16) * 13).reshape(48, 64)
    data = struct.pack("<iff", 0, 0.0, 0.0) + _encode(depth, "PNG")
    image = decode_compressed_image(data, "16UC1; compressedDepth png")
    assert image.dtype == np.uint16
    np.testing.assert_array_equal(image[..., 0], depth)


def test_truncated_jpeg_is_a_media_error() -> None:
    data = _encode(SMOOTH, "JPEG")
    with pytest.raises(MediaError, match="cannot decode JPEG image"):
        decode_compressed_image(data[: len(data) // 2], "jpeg")


def test_unknown_format_is_named() -> None:
    with pytest.raises(MediaError, match="'tiff'"):
        decode_compressed_image(b"abc", "tiff")
