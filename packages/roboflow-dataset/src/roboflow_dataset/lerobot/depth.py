"""Depth cameras in lerobot 0.6's format: 12-bit codes of a log (or linear) quantization.

A depth camera is a video feature whose ``info`` has ``"is_depth_map": true``, the unit of its
source values (``depth_unit``: ``mm`` for 16-bit images, ``m`` for float images) and the
quantizer's parameters as ``video.depth_min`` / ``video.depth_max`` / ``video.shift`` /
``video.use_log`` (metres). Frames are ``gray12le`` codes; lerobot's reader dequantizes them with
those parameters. :func:`quantize_depth` and :func:`dequantize_depth` are the math of lerobot
0.6.1's ``datasets/depth_utils.py`` (float32, the same rounding), so a dataset written here reads
back in lerobot exactly as one written by lerobot itself.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from roboflow_core.config import DepthConfig
from roboflow_media import depth_extra_options

__all__ = ["DEPTH_QMAX", "DepthUnit", "depth_info", "depth_unit_of", "dequantize_depth", "quantize_depth"]

DEPTH_QMAX = 4095
"""The largest 12-bit code."""
_MM_PER_M = 1000.0

DepthUnit = Literal["mm", "m"]


def depth_unit_of(dtype: np.dtype[Any]) -> DepthUnit | None:
    """``mm`` for ``uint16`` images (16UC1, mono16), ``m`` for ``float32`` (32FC1), else ``None``."""
    if dtype == np.uint16:
        return "mm"
    if dtype == np.float32:
        return "m"
    return None


def quantize_depth(depth: npt.NDArray[Any], unit: DepthUnit, config: DepthConfig) -> npt.NDArray[np.uint16]:
    """Depth in ``unit`` -> 12-bit codes (``uint16`` in ``0..4095``), of the same shape.

    Values below ``depth_min`` (0, no measurement) become code 0, above ``depth_max`` 4095.
    The parameters (metres) are converted to ``unit`` and the math runs there, as lerobot does.
    """
    per_unit = np.float32(_MM_PER_M if unit == "mm" else 1.0)
    low = np.float32(config.depth_min) * per_unit
    high = np.float32(config.depth_max) * per_unit
    values = depth.astype(np.float32)
    if config.use_log:
        shift = np.float32(config.shift) * per_unit
        log_low, log_high = math.log(float(low + shift)), math.log(float(high + shift))
        norm = (np.log(values + shift) - log_low) / (log_high - log_low)
    else:
        norm = (values - low) / (high - low)
    codes: npt.NDArray[np.uint16] = np.rint(norm * DEPTH_QMAX).clip(0, DEPTH_QMAX).astype(np.uint16)
    return codes


def dequantize_depth(
    codes: npt.NDArray[Any], unit: DepthUnit, config: DepthConfig
) -> npt.NDArray[np.float32]:
    """12-bit codes -> depth (``float32``) in ``unit``, within ``[depth_min, depth_max]``.

    As lerobot's reader: metres first, then millimetres rounded to whole millimetres.
    """
    low, high, shift = config.depth_min, config.depth_max, config.shift
    if config.use_log:
        offset = math.log(low + shift)
        scale = (math.log(high + shift) - offset) / DEPTH_QMAX
    else:
        offset, scale = low, (high - low) / DEPTH_QMAX
    metres = codes.astype(np.float32) * np.float32(scale) + np.float32(offset)
    if config.use_log:
        metres = np.exp(metres) - np.float32(shift)
    depth: npt.NDArray[np.float32] = np.clip(metres, low, high).astype(np.float32)
    if unit == "mm":
        depth = np.rint(depth * np.float32(_MM_PER_M)).astype(np.float32)
    return depth


def depth_info(config: DepthConfig, unit: DepthUnit) -> dict[str, Any]:
    """The depth entries of a feature's ``info``, as lerobot 0.6.1's writer records them."""
    return {
        "video.g": config.gop,
        "video.crf": config.crf,
        "video.preset": None,
        "video.fast_decode": 0,
        "video.video_backend": "pyav",
        "video.extra_options": depth_extra_options(config),
        "video.depth_min": config.depth_min,
        "video.depth_max": config.depth_max,
        "video.shift": config.shift,
        "video.use_log": config.use_log,
        "is_depth_map": True,
        "depth_unit": unit,
    }
