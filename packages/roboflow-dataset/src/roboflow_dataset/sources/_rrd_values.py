"""The values of one row of a Rerun entity, read from its Arrow chunk.

Images become HWC numpy arrays as the ROS images do (RGB order, mono as ``(H, W, 1)``, 16-bit and
float depth keep their dtype), through the same decoders (:mod:`roboflow_media`). A
``DepthImage`` is millimetres as ``uint16`` and metres as ``float32`` (rerun's default ``meter``);
another ``meter`` is converted to ``float32`` metres. Anything else
becomes a dict of its components: ``{"scalars": array([...]), "Scalars:scalars": ...}``, numeric
components as flat numpy arrays, so field paths (``fields = ["scalars"]``) select them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from roboflow_media import YuvLayout, decode_compressed_image, decode_raw_image, decode_yuv_image

__all__ = [
    "DEPTH_IMAGE",
    "ENCODED_IMAGE",
    "IMAGE",
    "PRIMARY",
    "SCALARS",
    "TENSOR",
    "component_values",
    "image",
]

IMAGE = "rerun.archetypes.Image"
ENCODED_IMAGE = "rerun.archetypes.EncodedImage"
DEPTH_IMAGE = "rerun.archetypes.DepthImage"
SCALARS = "rerun.archetypes.Scalars"
TENSOR = "rerun.archetypes.Tensor"

PRIMARY: dict[str, str] = {
    # archetype -> the component whose rows are the entity's messages, in order of preference
    IMAGE: "Image:buffer",
    ENCODED_IMAGE: "EncodedImage:blob",
    DEPTH_IMAGE: "DepthImage:buffer",
    TENSOR: "Tensor:data",
    SCALARS: "Scalars:scalars",
}
_SERIES_NAMES = ("SeriesLines:names", "SeriesPoints:names")

# rerun.datatypes.ColorModel / ChannelDatatype / PixelFormat enum values
_COLOR_MODELS = {1: "L", 2: "RGB", 3: "RGBA", 4: "BGR", 5: "BGRA"}
_DATATYPES = {6: "U8", 7: "I8", 8: "U16", 9: "I16", 10: "U32", 11: "I32", 12: "U64", 13: "I64"}
_DATATYPES.update({33: "F16", 34: "F32", 35: "F64"})
_ROS_ENCODING = {  # (color model, datatype) -> the sensor_msgs/Image encoding with that layout
    ("L", "U8"): "mono8",
    ("L", "U16"): "mono16",
    ("L", "I16"): "16SC1",
    ("L", "F32"): "32FC1",
    ("RGB", "U8"): "rgb8",
    ("RGBA", "U8"): "rgba8",
    ("BGR", "U8"): "bgr8",
    ("BGRA", "U8"): "bgra8",
    ("RGB", "U16"): "rgb16",
    ("BGR", "U16"): "bgr16",
}
_BYTES = {"U8": 1, "I16": 2, "U16": 2, "F32": 4}
_CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4, "BGR": 3, "BGRA": 4}
_BAYER = {128: "rggb", 129: "bggr", 130: "gbrg", 131: "grbg"}
_YUV: dict[int, tuple[YuvLayout, bool]] = {  # pixel format -> (layout, full range)
    20: ("i420", False),
    44: ("i420", True),
    26: ("nv12", False),
    27: ("yuy2", False),
    30: ("y8", True),
    41: ("y8", False),
    39: ("i444", False),
    40: ("i444", True),
    49: ("i422", False),
    50: ("i422", True),
}
_MEDIA_TYPES = {"image/jpeg": "jpeg", "image/png": "png"}


def _flat(values: pa.Array) -> Any:
    """A component batch as a flat numpy array (nested lists flattened), or Python values."""
    while pa.types.is_list(values.type) or pa.types.is_fixed_size_list(values.type):
        values = values.flatten()
    if pa.types.is_union(values.type):  # TensorBuffer: one typed list per element type
        values = pa.concat_arrays([values[i].value.values for i in range(len(values))])
    kind = values.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return values.to_numpy(zero_copy_only=False)
    return values.to_pylist()


def component_values(
    row_components: Mapping[str, pa.Array | None], statics: Mapping[str, pa.Array]
) -> dict[str, Any]:
    """The numeric view of a row: each component by its full name and its short name.

    Components missing from the row come from the entity's static data; a Tensor's ``data`` is
    its flat buffer; Scalars named by a static ``SeriesLines``/``SeriesPoints`` get ``names``.
    """
    merged = {**statics, **{k: v for k, v in row_components.items() if v is not None}}
    values: dict[str, Any] = {}
    for name, batch in merged.items():
        value = _flat(batch.field("buffer")) if name == PRIMARY[TENSOR] else _flat(batch)
        values[name] = value
        values.setdefault(name.rpartition(":")[2], value)
    for name in _SERIES_NAMES:
        if name in merged:
            values.setdefault("names", _flat(merged[name]))
    return values


def _format(batch: pa.Array) -> dict[str, Any]:
    fmt: dict[str, Any] = batch[0].as_py()
    return fmt


def _raw_image(buffer: np.ndarray, fmt: dict[str, Any]) -> np.ndarray:
    width, height = int(fmt["width"]), int(fmt["height"])
    pixel_format = fmt.get("pixel_format")
    if pixel_format is not None:
        if pixel_format in _BAYER:
            return decode_raw_image(
                buffer, height=height, width=width, encoding=f"bayer_{_BAYER[pixel_format]}8", step=width
            )
        if pixel_format in _YUV:
            layout, full_range = _YUV[pixel_format]
            return decode_yuv_image(buffer, height=height, width=width, layout=layout, full_range=full_range)
        raise ValueError(f"unknown rerun pixel format {pixel_format}")
    model = _COLOR_MODELS.get(fmt.get("color_model") or 1, "?")
    datatype = _DATATYPES.get(fmt.get("channel_datatype") or 6, "?")
    encoding = _ROS_ENCODING.get((model, datatype))
    if encoding is None:
        known = ", ".join(f"{m}/{d}" for m, d in _ROS_ENCODING)
        raise ValueError(f"rerun image format {model}/{datatype} is not supported (supported: {known})")
    step = width * _CHANNELS[model] * _BYTES[datatype]
    return decode_raw_image(buffer, height=height, width=width, encoding=encoding, step=step)


def _encoded_image(blob: np.ndarray, media_type: str | None) -> np.ndarray:
    fmt = _MEDIA_TYPES.get(media_type or "")
    if fmt is None:
        head = bytes(blob[:4])
        fmt = "jpeg" if head.startswith(b"\xff\xd8") else "png" if head.startswith(b"\x89PNG") else ""
    if not fmt:
        raise ValueError(f"EncodedImage of media type {media_type!r}: only JPEG and PNG are supported")
    return decode_compressed_image(blob.tobytes(), fmt)


def image(
    archetype: str, row_components: Mapping[str, pa.Array | None], statics: Mapping[str, pa.Array]
) -> np.ndarray:
    """The pixels of an ``Image``, ``DepthImage`` or ``EncodedImage`` row (HWC).

    Raises:
        ValueError: A component is missing or the format is not supported.
        MediaError: The pixels do not decode (too little data, a corrupt JPEG).
    """
    prefix = archetype.rpartition(".")[2]

    def component(name: str) -> pa.Array | None:
        value = row_components.get(f"{prefix}:{name}")
        return value if value is not None else statics.get(f"{prefix}:{name}")

    if archetype == ENCODED_IMAGE:
        blob = component("blob")
        assert blob is not None  # the primary component: rows without it are no messages
        media = component("media_type")
        return _encoded_image(blob[0].values.to_numpy(), None if media is None else media[0].as_py())
    buffer, fmt = component("buffer"), component("format")
    assert buffer is not None
    if fmt is None:
        raise ValueError(f"the row has no {prefix}:format and the entity has no static one")
    pixels = _raw_image(buffer[0].values.to_numpy(), _format(fmt))
    meter = component("meter")
    return (
        pixels if archetype != DEPTH_IMAGE or meter is None else _in_metres(pixels, float(meter[0].as_py()))
    )


def _in_metres(depth: np.ndarray, meter: float) -> np.ndarray:
    """Depth with rerun's ``meter`` (units per metre): as it is where that is the unit the dataset
    knows for its dtype (1000 for integers: millimetres; 1 for floats: metres), else float32 metres."""
    if meter == (1000.0 if depth.dtype.kind in "iu" else 1.0):
        return depth
    metres: np.ndarray = (depth.astype(np.float64) / meter).astype(np.float32)
    return metres
