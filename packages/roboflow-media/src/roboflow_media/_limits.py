"""The largest image a recording may make a decoder allocate."""

from __future__ import annotations

from roboflow_core.errors import MediaError

__all__ = ["MAX_IMAGE_PIXELS", "check_image_size"]

MAX_IMAGE_PIXELS = 8192 * 8192
"""Pixels of the largest image decoded (8K square, ~200 MB as RGB); a camera frame beyond it is
damage or an attack (a 20000x20000 PNG is 400 MP, 1.2 GB decoded, from a few KB)."""


def check_image_size(width: int, height: int, what: str) -> None:
    """Refuse an image larger than :data:`MAX_IMAGE_PIXELS` before decoding it."""
    if width * height > MAX_IMAGE_PIXELS:
        raise MediaError(
            f"{what} image of {width}x{height} pixels is larger than the {MAX_IMAGE_PIXELS:,} pixels "
            "a camera frame may have (a damaged or hostile message)"
        )
