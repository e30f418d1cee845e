"""``YuvFrame``: a colour frame kept in the YUV planes its decoder produced (a JPEG's YCbCr).

A JPEG holds full-range YCbCr, 4:2:0 as a rule, and a video encoder wants limited-range YUV
4:2:0. Decoded to RGB and converted back, a 640x480 frame costs a chroma upsampling and two colour
conversions (about 1.9 ms of CPU); kept as planes, the encoder only rescales their range (about
0.5 ms), and the frames it encodes differ from the RGB route's by rounding (at most 2 levels).
"""

from __future__ import annotations

from typing import Any, ClassVar

import av
import numpy as np
from av.video.frame import PictureType
from av.video.reformatter import ColorRange, VideoReformatter
from numpy.typing import NDArray

from roboflow_core.errors import MediaError
from roboflow_media.yuv_image import yuv_to_rgb

__all__ = ["ImageFrame", "YuvFrame"]

_FULL_RANGE = frozenset({"yuvj420p", "yuvj422p", "yuvj444p", "yuvj440p", "yuvj411p"})
"""Planar 8-bit full-range YUV: what FFmpeg's JPEG decoder produces for YCbCr images."""
_UNSPECIFIED_MATRIX = 2
"""FFmpeg's ``AVCOL_SPC_UNSPECIFIED`` (PyAV's ``Colorspace`` has no member for it)."""


class YuvFrame:
    """An ``(H, W, 3)`` uint8 colour frame held as full-range planar YUV (an :class:`av.VideoFrame`).

    It has the ``shape``, ``dtype``, ``ndim`` and ``nbytes`` of the RGB array it stands for, and
    ``np.asarray`` gives that array; the PyAV encoder takes it as it is.

    Raises:
        MediaError: The frame is not planar 8-bit full-range YUV.
    """

    __slots__ = ("frame",)
    dtype: ClassVar[np.dtype[np.uint8]] = np.dtype(np.uint8)
    ndim: ClassVar[int] = 3

    def __init__(self, frame: av.VideoFrame) -> None:
        if frame.format.name not in _FULL_RANGE:
            raise MediaError(f"a YuvFrame holds full-range planar YUV, not {frame.format.name}")
        self.frame = frame

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.frame.height, self.frame.width, 3)

    @property
    def nbytes(self) -> int:
        return sum(plane.buffer_size for plane in self.frame.planes)

    def to_format(self, pix_fmt: str, reformatter: VideoReformatter | None = None) -> av.VideoFrame:
        """The frame in an encoder's pixel format (limited range for YUV formats), one conversion,
        tagged as a frame converted from RGB is: range and matrix unspecified, no picture type
        (a decoded JPEG is an intra picture, which encoders take as a request for a key frame:
        SVT-AV1's output grew by half). ``reformatter``: one kept by the caller (else a new one)."""
        converted = (reformatter or VideoReformatter()).reformat(
            self.frame, format=pix_fmt, src_color_range="JPEG", dst_color_range="MPEG", threads=1
        )
        converted.color_range = ColorRange.UNSPECIFIED
        converted.colorspace = _UNSPECIFIED_MATRIX
        converted.pict_type = PictureType.NONE
        return converted

    def to_rgb(self) -> NDArray[np.uint8]:
        """The ``(H, W, 3)`` RGB array (for encoders and readers that need one)."""
        rgb = self.frame.to_ndarray(format="rgb24", src_color_range="JPEG", dst_color_range="JPEG", threads=1)
        return np.asarray(rgb, dtype=np.uint8)

    def sample_rgb(self, stride: int) -> NDArray[np.uint8]:
        """RGB of the pixels ``[::stride, ::stride]`` (each with the chroma sample covering it),
        converted without making the whole RGB frame: what statistics sample. The channels are
        planes (see :func:`yuv_to_rgb`), as statistics read them."""
        height, width, _ = self.shape
        luma, u, v = self._planes()
        rows, cols = _covering(height, u.shape[0], stride), _covering(width, u.shape[1], stride)
        return yuv_to_rgb(luma[::stride, ::stride], u[rows][:, cols], v[rows][:, cols], True, planar=True)

    def _planes(self) -> list[NDArray[np.uint8]]:
        """Y, U and V as arrays over the frame's buffers (no copy)."""
        return [
            np.frombuffer(memoryview(p), dtype=np.uint8).reshape(p.height, p.line_size)[:, : p.width]
            for p in self.frame.planes[:3]
        ]

    def __array__(self, dtype: Any = None, copy: Any = None) -> NDArray[Any]:
        rgb = self.to_rgb()
        return rgb if dtype is None else rgb.astype(dtype)


def _covering(pixels: int, samples: int, stride: int) -> slice | NDArray[np.intp]:
    """The chroma samples covering pixels ``0, stride, 2 * stride, ...`` of an axis: a slice (a
    view, no gather) where whole chroma steps fall on them, else their indices."""
    factor, rest = divmod(pixels, samples)
    if rest == 0 and stride % factor == 0:
        return slice(None, None, stride // factor)
    return np.arange(0, pixels, stride) * samples // pixels


ImageFrame = NDArray[Any] | YuvFrame
"""A decoded image as encoders take it: an array, or a colour frame still in its YUV planes."""
