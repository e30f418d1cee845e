"""Decode ``sensor_msgs/Image`` payloads (raw pixel buffers) into HWC numpy arrays.

Colour comes back in RGB order, mono as ``(H, W, 1)``; 16-bit and float images keep their
dtype (in native byte order). Results are read-only views of ``data`` wherever the layout
allows it (step padding, BGR order and alpha are all handled by strides, not copies).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from roboflow_core.errors import MediaError
from roboflow_media._limits import check_image_size

__all__ = ["RAW_ENCODINGS", "decode_raw_image"]


class _Layout(NamedTuple):
    dtype: str  # numpy base type, little-endian spelling
    channels: int
    order: str  # "rgb" | "bgr" | "mono" | "bayer_<pattern>"


_LAYOUTS: dict[str, _Layout] = {
    "rgb8": _Layout("u1", 3, "rgb"),
    "rgba8": _Layout("u1", 4, "rgb"),
    "bgr8": _Layout("u1", 3, "bgr"),
    "bgra8": _Layout("u1", 4, "bgr"),
    "8UC3": _Layout("u1", 3, "bgr"),  # OpenCV's convention
    "8UC4": _Layout("u1", 4, "bgr"),
    "rgb16": _Layout("<u2", 3, "rgb"),
    "bgr16": _Layout("<u2", 3, "bgr"),
    "mono8": _Layout("u1", 1, "mono"),
    "8UC1": _Layout("u1", 1, "mono"),
    "mono16": _Layout("<u2", 1, "mono"),
    "16UC1": _Layout("<u2", 1, "mono"),
    "16SC1": _Layout("<i2", 1, "mono"),
    "32FC1": _Layout("<f4", 1, "mono"),
    **{
        f"bayer_{pattern}{bits}": _Layout(dtype, 1, f"bayer_{pattern}")
        for pattern in ("rggb", "bggr", "gbrg", "grbg")
        for bits, dtype in (("8", "u1"), ("16", "<u2"))
    },
}

RAW_ENCODINGS: frozenset[str] = frozenset(_LAYOUTS)
"""The ``sensor_msgs/Image.encoding`` values :func:`decode_raw_image` understands."""


def decode_raw_image(
    data: bytes | bytearray | memoryview | NDArray[np.uint8],
    *,
    height: int,
    width: int,
    encoding: str,
    step: int,
    is_bigendian: bool = False,
) -> NDArray[np.generic]:
    """Decode one raw image buffer.

    Args:
        data: The message's ``data`` field (``height * step`` bytes, more is ignored).
        height: Rows.
        width: Columns.
        encoding: ``sensor_msgs/Image.encoding`` (see :data:`RAW_ENCODINGS`).
        step: Bytes per row, padding included.
        is_bigendian: Byte order of multi-byte pixels.

    Returns:
        ``(H, W, 3)`` RGB for colour and Bayer encodings (alpha dropped), ``(H, W, 1)`` for mono.
        The dtype is ``uint8``, ``uint16``, ``int16`` or ``float32`` as the encoding says.

    Raises:
        MediaError: Unknown encoding, a step too small for the width, too little data, or an
            image larger than ``MAX_IMAGE_PIXELS``.
    """
    layout = _LAYOUTS.get(encoding)
    check_image_size(width, height, f"raw {encoding}")
    if layout is None:
        known = ", ".join(sorted(RAW_ENCODINGS))
        raise MediaError(f"unknown image encoding {encoding!r}; known encodings: {known}")
    dtype = _dtype(layout.dtype, is_bigendian)
    pixel_bytes = layout.channels * dtype.itemsize
    row_bytes = width * pixel_bytes
    if step < row_bytes:
        what = _what(width, height, encoding, step)
        raise MediaError(f"image step {step} is smaller than a row of {row_bytes} bytes ({what})")
    size = data.nbytes if isinstance(data, np.ndarray) else memoryview(data).nbytes
    if size < height * step:
        what = _what(width, height, encoding, step)
        raise MediaError(f"image data is {size} bytes, expected height*step = {height * step} ({what})")
    shape = (height, width, layout.channels)
    pixels = np.ndarray(shape, dtype, data, strides=(step, pixel_bytes, dtype.itemsize))
    if not dtype.isnative:
        pixels = pixels.astype(dtype.newbyteorder("="))
    if layout.order == "rgb":
        return pixels if layout.channels == 3 else pixels[..., :3]
    if layout.order == "bgr":
        return pixels[..., 2::-1]
    if layout.order == "mono":
        return pixels
    pattern = layout.order.removeprefix("bayer_")
    return _demosaic(pixels[..., 0], pattern, _what(width, height, encoding, step))


@functools.cache
def _dtype(name: str, is_bigendian: bool) -> np.dtype[Any]:
    return np.dtype(name).newbyteorder(">" if is_bigendian else "<")


def _what(width: int, height: int, encoding: str, step: int) -> str:
    """The image, as errors name it."""
    return f"{width}x{height} {encoding}, step {step}"


def _demosaic(raw: NDArray[np.generic], pattern: str, what: str) -> NDArray[np.generic]:
    """Cheap demosaic: one RGB value per 2x2 cell (greens averaged), repeated over the cell."""
    height, width = raw.shape
    if height % 2 or width % 2:
        raise MediaError(f"a Bayer image needs an even width and height ({what})")
    planes: dict[str, list[NDArray[np.generic]]] = {"r": [], "g": [], "b": []}
    for row in range(2):
        for col in range(2):
            planes[pattern[2 * row + col]].append(raw[row::2, col::2])
    (red,), (green_a, green_b), (blue,) = planes["r"], planes["g"], planes["b"]
    green = ((green_a.astype(np.uint32) + green_b.astype(np.uint32)) // 2).astype(raw.dtype)
    rgb = np.stack([red, green, blue], axis=-1)
    return rgb.repeat(2, axis=0).repeat(2, axis=1)
