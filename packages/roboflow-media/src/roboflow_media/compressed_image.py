"""Decode ``sensor_msgs/CompressedImage`` payloads (JPEG, PNG, ``compressedDepth``).

To RGB arrays: JPEGs with libjpeg-turbo (simplejpeg), PNGs and CMYK/YCCK JPEGs with Pillow.
"""

from __future__ import annotations

import struct
from io import BytesIO

import numpy as np
import simplejpeg
from numpy.typing import NDArray

from roboflow_core.buffers import BufferPool
from roboflow_core.errors import MediaError
from roboflow_media._limits import check_image_size

__all__ = ["decode_compressed_image"]

# compressedDepth (image_transport_plugins): int32 format, float32 depthQuantA, float32 depthQuantB.
_DEPTH_HEADER = struct.Struct("<iff")
_FORMATS = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG"}


def decode_compressed_image(
    data: bytes | bytearray | memoryview, fmt: str, *, buffers: BufferPool | None = None
) -> NDArray[np.generic]:
    """Decode one compressed image.

    Args:
        data: The message's ``data`` field.
        fmt: The message's ``format`` field, e.g. ``"jpeg"``, ``"rgb8; jpeg compressed bgr8"``,
            ``"png"`` or ``"16UC1; compressedDepth png"``.
        buffers: Where a JPEG's pixels are decoded to (the caller's pool for one stream of images,
            taken from one thread); default: a new array.

    Returns:
        ``(H, W, 3)`` RGB ``uint8`` for colour images, ``(H, W, 1)`` for grayscale ones
        (``uint16`` for 16-bit PNG depth, ``float32`` metres for ``32FC1; compressedDepth``).

    Raises:
        MediaError: The format is neither JPEG nor PNG, the image is truncated or corrupt, or
            larger than ``MAX_IMAGE_PIXELS`` (refused from its header, before decoding).
    """
    lowered = fmt.lower()
    codec = next((name for key, name in _FORMATS.items() if key in lowered), None)
    if codec is None:
        raise MediaError(f"unsupported compressed image format {fmt!r}; expected jpeg or png")
    payload = memoryview(data)
    quant: tuple[float, float] | None = None
    if "compresseddepth" in lowered:
        if len(payload) < _DEPTH_HEADER.size:
            raise MediaError(f"compressedDepth image is only {len(payload)} bytes ({fmt!r})")
        _, quant_a, quant_b = _DEPTH_HEADER.unpack_from(payload)
        quant = (quant_a, quant_b) if lowered.startswith("32fc1") else None
        payload = payload[_DEPTH_HEADER.size :]
    pixels = _decode_jpeg(payload, fmt, buffers) if codec == "JPEG" else _decode(payload, codec, fmt)
    if quant is not None:
        return _dequantize_depth(pixels, *quant)
    return pixels


_TURBO_COLOURSPACES = {"YCbCr": ("RGB", 3), "RGB": ("RGB", 3), "Gray": ("GRAY", 1)}
"""JPEG colour spaces decoded by libjpeg-turbo straight into an array, the output asked for and its
channels."""


def _decode_jpeg(payload: memoryview, fmt: str, buffers: BufferPool | None) -> NDArray[np.generic]:
    """A JPEG, decoded by libjpeg-turbo into one array (from ``buffers`` when given) without holding
    the GIL: the same pixels as Pillow's decoder (same library, same default IDCT and upsampling) at
    about half the CPU and without its per-image Python work; CMYK/YCCK images go through Pillow,
    which converts them."""
    try:
        height, width, colourspace, _ = simplejpeg.decode_jpeg_header(payload)
    except ValueError as err:
        raise MediaError(f"cannot decode JPEG image ({fmt!r}, {len(payload)} bytes): {err}") from err
    check_image_size(width, height, "JPEG")
    turbo = _TURBO_COLOURSPACES.get(colourspace)
    if turbo is None:
        return _decode(payload, "JPEG", fmt)
    output, channels = turbo
    buffer = None if buffers is None else buffers.take(height * width * channels)
    try:
        pixels: NDArray[np.uint8] = simplejpeg.decode_jpeg(payload, colorspace=output, buffer=buffer)
    except (ValueError, RuntimeError) as err:
        raise MediaError(f"cannot decode JPEG image ({fmt!r}, {len(payload)} bytes): {err}") from err
    return pixels


def _decode(payload: memoryview, codec: str, fmt: str) -> NDArray[np.generic]:
    """A PNG, or a JPEG libjpeg-turbo does not take, with Pillow (imported here: most recordings
    never need it, and its import is ~17 ms of every conversion's start-up)."""
    from PIL import Image

    # what Pillow raises on bad data (its bomb warning too, where warnings are errors: our bound is lower)
    refused = (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning)
    try:
        with Image.open(BytesIO(payload), formats=[codec]) as image:
            check_image_size(*image.size, codec)
            if image.mode in ("L", "I;16", "I;16B", "I"):
                pixels = np.asarray(image)
                if image.mode == "I":  # 16-bit PNG opened as 32-bit integer mode
                    pixels = pixels.astype(np.uint16)
                return pixels[..., np.newaxis]
            return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except refused as err:
        raise MediaError(f"cannot decode {codec} image ({fmt!r}, {len(payload)} bytes): {err}") from err


def _dequantize_depth(pixels: NDArray[np.generic], quant_a: float, quant_b: float) -> NDArray[np.float32]:
    """Invert image_transport's inverse-depth quantization; 0 stays 0 (no measurement)."""
    raw = pixels.astype(np.float32)
    depth = np.zeros_like(raw)
    valid = raw > 0
    depth[valid] = quant_a / (raw[valid] - quant_b)
    return depth
