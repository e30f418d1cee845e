"""decode_compressed_image: JPEG/PNG round trips, compressedDepth, corrupt input."""

from __future__ import annotations

import struct
from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from roboflow_core.buffers import BufferPool
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


def _gradient(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    noise = np.random.default_rng(3).integers(0, 40, (height, width, 3))
    return (
        (np.stack([x * 255 // width, y * 255 // height, (x ^ y) & 255], axis=-1) + noise)
        .clip(0, 255)
        .astype(np.uint8)
    )


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("RGB", {"quality": 75}),
        ("RGB", {"quality": 95, "subsampling": 0}),
        ("RGB", {"quality": 90, "subsampling": 1}),
        ("RGB", {"progressive": True}),
        ("L", {}),
        ("CMYK", {}),
    ],
)
def test_jpeg_pixels_are_pillows(mode: str, options: dict[str, object]) -> None:
    """The libjpeg-turbo path decodes to exactly the pixels Pillow's decoder gives (odd sizes too)."""
    image = Image.fromarray(_gradient(61, 83)).convert(mode)
    buffer = BytesIO()
    image.save(buffer, "JPEG", **options)
    data = buffer.getvalue()
    with Image.open(BytesIO(data)) as reference:
        expected = np.asarray(reference.convert("RGB") if mode == "CMYK" else reference)
    if expected.ndim == 2:
        expected = expected[..., np.newaxis]
    decoded = decode_compressed_image(data, "jpeg")
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, expected)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_jpegs_decoded_into_reused_buffers_stay_intact_while_held(mode: str) -> None:
    pool = BufferPool(8, 1 << 30)
    pixels = _gradient(240, 320) if mode == "RGB" else _gradient(240, 320)[..., 0]
    data = [_encode(np.roll(pixels, 7 * i, axis=1), "JPEG") for i in range(12)]
    held = []
    for i, jpeg in enumerate(data):
        decoded = decode_compressed_image(jpeg, "jpeg", buffers=pool)
        np.testing.assert_array_equal(decoded, decode_compressed_image(jpeg, "jpeg"))
        if i % 3 == 0:
            held.append((jpeg, decoded))
    for jpeg, decoded in held:
        np.testing.assert_array_equal(decoded, decode_compressed_image(jpeg, "jpeg"))
    one = pixels.nbytes + pixels.nbytes // 16
    assert one <= pool.nbytes <= (len(held) + 2) * one  # those let go of (but the held and the last)


def test_jpeg_larger_than_the_limit_is_refused_from_its_header() -> None:
    data = bytearray(_encode(SMOOTH, "JPEG"))
    sof = data.index(b"\xff\xc0")  # baseline frame header: length(2) precision(1) height(2) width(2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", 9000, 9000)
    with pytest.raises(MediaError, match="9000x9000 pixels is larger than"):
        decode_compressed_image(bytes(data), "jpeg")


def test_jpeg_truncated_after_its_header_is_a_media_error() -> None:
    data = _encode(_gradient(480, 640), "JPEG", quality=95)
    with pytest.raises(MediaError, match="cannot decode JPEG image"):
        decode_compressed_image(data[: len(data) // 2], "jpeg")
