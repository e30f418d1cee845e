"""Decode YUV pixel buffers (NV12, YUY2, I420/I422/I444 planar, Y8) into RGB numpy arrays.

The layouts are those of rerun's ``PixelFormat`` (and of most camera drivers). Colours are
converted with the BT.601 matrix, from limited range (Y in [16, 235], U/V in [16, 240]) or full
range; chroma planes of subsampled layouts are repeated over the pixels they cover.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from roboflow_core.errors import MediaError

__all__ = ["YUV_LAYOUTS", "YuvLayout", "decode_yuv_image", "yuv_to_rgb"]

YuvLayout = Literal["nv12", "yuy2", "i420", "i422", "i444", "y8"]
YUV_LAYOUTS: tuple[YuvLayout, ...] = ("nv12", "yuy2", "i420", "i422", "i444", "y8")
_CHROMA_DIVISORS = {"nv12": (2, 2), "i420": (2, 2), "yuy2": (1, 2), "i422": (1, 2), "i444": (1, 1)}


def _size(layout: str, height: int, width: int) -> int:
    if layout == "y8":
        return height * width
    rows, cols = _CHROMA_DIVISORS[layout]
    return height * width + 2 * (height // rows) * (width // cols)


def _planes(buffer: NDArray[np.uint8], layout: str, height: int, width: int) -> tuple[NDArray[np.uint8], ...]:
    """Y, U and V, each at its own resolution."""
    if layout == "yuy2":  # Y0 U0 Y1 V0 for every two pixels of a row
        quads = buffer[: height * width * 2].reshape(height, width // 2, 4)
        return quads[..., 0::2].reshape(height, width), quads[..., 1], quads[..., 3]
    pixels = height * width
    luma = buffer[:pixels].reshape(height, width)
    rows, cols = _CHROMA_DIVISORS[layout]
    shape = (height // rows, width // cols)
    chroma = shape[0] * shape[1]
    if layout == "nv12":  # interleaved U0 V0 U1 V1 ...
        pairs = buffer[pixels : pixels + 2 * chroma].reshape(*shape, 2)
        return luma, pairs[..., 0], pairs[..., 1]
    u = buffer[pixels : pixels + chroma].reshape(shape)
    return luma, u, buffer[pixels + chroma : pixels + 2 * chroma].reshape(shape)


def decode_yuv_image(
    data: bytes | bytearray | memoryview | NDArray[np.uint8],
    *,
    height: int,
    width: int,
    layout: YuvLayout,
    full_range: bool,
) -> NDArray[np.uint8]:
    """Decode one YUV image to RGB (``y8`` to grey).

    Args:
        data: The pixel buffer (more than the layout needs is ignored).
        height: Rows.
        width: Columns.
        layout: ``nv12`` (4:2:0, interleaved chroma), ``yuy2`` (4:2:2 packed), ``i420``,
            ``i422``, ``i444`` (planar) or ``y8`` (luma only).
        full_range: Components use 0..255 instead of the limited video range.

    Returns:
        ``(H, W, 3)`` RGB uint8, or ``(H, W, 1)`` for ``y8``.

    Raises:
        MediaError: An unknown layout, odd sizes where chroma is subsampled, or too little data.
    """
    what = f"{width}x{height} {layout}"
    if layout not in YUV_LAYOUTS:
        raise MediaError(f"unknown YUV layout {layout!r}; known layouts: {', '.join(YUV_LAYOUTS)}")
    rows, cols = _CHROMA_DIVISORS.get(layout, (1, 1))
    if height % rows or width % cols:
        raise MediaError(f"{layout} needs a width divisible by {cols} and a height by {rows} ({what})")
    buffer = np.frombuffer(data, dtype=np.uint8)
    needed = _size(layout, height, width)
    if buffer.size < needed:
        raise MediaError(f"image data is {buffer.size} bytes, expected {needed} ({what})")
    if layout == "y8":
        grey: NDArray[np.uint8] = buffer[: height * width].reshape(height, width, 1)
        if full_range:
            return grey
        return _to_u8((grey.astype(np.float32) - 16) * (255 / 219))
    y, u, v = _planes(buffer, layout, height, width)
    return yuv_to_rgb(
        y,
        u.repeat(rows, axis=0).repeat(cols, axis=1),
        v.repeat(rows, axis=0).repeat(cols, axis=1),
        full_range,
    )


def yuv_to_rgb(
    y: NDArray[np.uint8],
    u: NDArray[np.uint8],
    v: NDArray[np.uint8],
    full_range: bool,
) -> NDArray[np.uint8]:
    """BT.601 YUV samples (all three at the same positions, any shape) to RGB (shape + ``(3,)``).

    Args:
        y: Luma.
        u: Cb at the same positions.
        v: Cr at the same positions.
        full_range: Components use 0..255 (JPEG's YCbCr) instead of the limited video range.
    """
    luma = y.astype(np.float32)
    u_full = u.astype(np.float32) - 128
    v_full = v.astype(np.float32) - 128
    if not full_range:
        luma = (luma - 16) * (255 / 219)
        u_full *= 255 / 224
        v_full *= 255 / 224
    rgb = np.stack(
        [luma + 1.402 * v_full, luma - 0.344136 * u_full - 0.714136 * v_full, luma + 1.772 * u_full], axis=-1
    )
    return _to_u8(rgb)


def _to_u8(values: NDArray[np.float32]) -> NDArray[np.uint8]:
    rounded: NDArray[np.uint8] = np.clip(values + 0.5, 0, 255).astype(np.uint8)
    return rounded
