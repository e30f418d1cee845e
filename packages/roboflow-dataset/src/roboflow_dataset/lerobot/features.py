"""Feature declarations: what ``meta/info.json`` lists and how each feature is stored in parquet."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import numpy.typing as npt

from roboflow_core.config import DepthConfig
from roboflow_core.errors import DatasetError
from roboflow_dataset.lerobot.depth import DepthUnit, depth_info

if TYPE_CHECKING:  # pyarrow (~40 ms a process) is imported where a column or schema is first made
    import pyarrow as pa

__all__ = [
    "CAMERA_NAMES",
    "DEFAULT_FEATURES",
    "FeatureSpec",
    "arrow_schema",
    "camera_feature",
]

CAMERA_NAMES: tuple[str, ...] = ("height", "width", "channels")
_NUMERIC_DTYPES = frozenset({"float32", "float64", "int32", "int64", "bool"})


class FeatureSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One dataset feature, as declared in ``meta/info.json``.

    Attributes:
        name: Column or camera key, e.g. ``observation.state`` or ``observation.images.front``.
        dtype: numpy dtype string (``float32``, ``int64``, ...) or ``video``.
        shape: ``(n,)`` for numeric features, ``(H, W, 3)`` for cameras.
        names: One name per element, or ``None``.
        info: The ``video.*`` block of a camera, probed from its mp4.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    names: tuple[str, ...] | None = None
    info: dict[str, Any] | None = None

    @property
    def is_video(self) -> bool:
        """Whether the feature is a camera stored as mp4 (not a parquet column)."""
        return self.dtype == "video"

    def to_info(self) -> dict[str, Any]:
        """The ``features`` entry of ``meta/info.json``."""
        entry: dict[str, Any] = {
            "dtype": self.dtype,
            "shape": list(self.shape),
            "names": None if self.names is None else list(self.names),
        }
        if self.info is not None:
            entry["info"] = dict(self.info)
        return entry

    def check_column(self) -> None:
        """Refuse a feature that cannot be a parquet column.

        Raises:
            DatasetError: The feature is a camera, or not a 1-D numeric vector.
        """
        if self.dtype not in _NUMERIC_DTYPES or len(self.shape) != 1:
            raise DatasetError(
                f"feature {self.name!r}: only 1-D numeric features ({', '.join(sorted(_NUMERIC_DTYPES))})"
                f" can be parquet columns, got dtype {self.dtype} shape {list(self.shape)}"
            )

    def arrow_type(self) -> pa.DataType:
        """Parquet column type: a scalar for shape (1,), else ``fixed_size_list<dtype>[n]``.

        Raises:
            DatasetError: As :meth:`check_column`.
        """
        import pyarrow as pa

        self.check_column()
        scalar = pa.from_numpy_dtype(np.dtype(self.dtype))
        return scalar if self.shape == (1,) else pa.list_(scalar, self.shape[0])

    def column(self, values: npt.ArrayLike) -> pa.Array:
        """Build this feature's parquet column from ``(n, *shape)`` values.

        Raises:
            DatasetError: As :meth:`arrow_type`.
        """
        import pyarrow as pa

        from roboflow_dataset.lerobot._arrow import from_numpy

        arrow_type = self.arrow_type()
        scalar = arrow_type if self.shape == (1,) else arrow_type.value_type
        column = from_numpy(np.asarray(values, dtype=self.dtype), scalar)
        return column if self.shape == (1,) else pa.FixedSizeListArray.from_arrays(column, self.shape[0])

    def hf_type(self) -> dict[str, Any]:
        """The Hugging Face ``datasets`` feature type, for the parquet schema metadata."""
        value = {"dtype": self.dtype, "_type": "Value"}
        if self.shape == (1,):
            return value
        return {"feature": value, "length": self.shape[0], "_type": "Sequence"}


DEFAULT_FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec(name="timestamp", dtype="float32", shape=(1,)),
    FeatureSpec(name="frame_index", dtype="int64", shape=(1,)),
    FeatureSpec(name="episode_index", dtype="int64", shape=(1,)),
    FeatureSpec(name="index", dtype="int64", shape=(1,)),
    FeatureSpec(name="task_index", dtype="int64", shape=(1,)),
)
"""The five columns every LeRobot dataset has, in LeRobot's order."""


def camera_feature(
    name: str,
    *,
    width: int,
    height: int,
    codec: str,
    pix_fmt: str,
    fps: int,
    depth: tuple[DepthUnit, DepthConfig] | None = None,
) -> FeatureSpec:
    """A camera feature with the ``info`` block LeRobot writes from the probed mp4.

    Colour cameras get LeRobot 0.4.x's block (shape ``(H, W, 3)``); a depth camera gets
    LeRobot 0.6.1's (shape ``(H, W, 1)``, ``is_depth_map``, ``depth_unit`` and the quantizer's
    parameters, see :mod:`roboflow_dataset.lerobot.depth`).

    Args:
        name: Camera key.
        width: Frame width in pixels.
        height: Frame height in pixels.
        codec: The stream's canonical codec name (``h264``, ``av1``, ...).
        pix_fmt: Pixel format of the stream (``yuv420p``; ``gray12le`` for depth).
        fps: Frame rate.
        depth: For a depth camera, the unit of its source values and its ``[video.depth]`` settings.
    """
    channels = 3 if depth is None else 1
    info: dict[str, Any] = {
        "video.height": height,
        "video.width": width,
        "video.codec": codec,
        "video.pix_fmt": pix_fmt,
        "video.is_depth_map": False,
        "video.fps": fps,
        "video.channels": channels,
        "has_audio": False,
    }
    if depth is not None:
        del info["video.is_depth_map"]  # lerobot 0.6 reads the marker from is_depth_map
        info |= depth_info(depth[1], depth[0])
    return FeatureSpec(
        name=name, dtype="video", shape=(height, width, channels), names=CAMERA_NAMES, info=info
    )


def arrow_schema(features: Sequence[FeatureSpec]) -> pa.Schema:
    """Parquet schema of the given (non-video) features, with Hugging Face ``datasets`` metadata.

    Raises:
        DatasetError: A feature cannot be a parquet column.
    """
    import pyarrow as pa

    fields = [pa.field(f.name, f.arrow_type()) for f in features]
    hf = {"info": {"features": {f.name: f.hf_type() for f in features}}}
    return pa.schema(fields, metadata={"huggingface": json.dumps(hf)})
