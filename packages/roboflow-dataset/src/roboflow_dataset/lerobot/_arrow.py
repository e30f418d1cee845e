"""Arrow arrays from numpy buffers and Python values, without importing pandas.

``pa.array`` (like ``pa.scalar`` and ``Table.from_pylist``) first asks pyarrow's pandas shim whether
its input is a pandas object, and that imports pandas (~0.3 s) into a process that never needs it:
a conversion's workers and a merge build their columns here instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["from_numpy", "from_values"]


def from_numpy(values: npt.NDArray[Any], kind: pa.DataType) -> pa.Array:
    """A flat array of the fixed-width (or bool) ``kind`` over ``values``, which already have its dtype."""
    flat = np.ascontiguousarray(values).reshape(-1)
    buffer = np.packbits(flat, bitorder="little") if pa.types.is_boolean(kind) else flat
    return pa.Array.from_buffers(kind, len(flat), [None, pa.py_buffer(buffer)])


def from_values(values: Sequence[Any], kind: pa.DataType) -> pa.Array:
    """``values`` (numbers, strings, nested lists for list types; no nulls) as an array of ``kind``."""
    if pa.types.is_list(kind):
        flat = [item for value in values for item in value]
        return pa.ListArray.from_arrays(
            _offsets(len(value) for value in values), from_values(flat, kind.value_type), type=kind
        )
    if pa.types.is_string(kind):
        encoded = [str(value).encode() for value in values]
        offsets = _offsets(len(data) for data in encoded).buffers()[1]
        return pa.Array.from_buffers(kind, len(encoded), [None, offsets, pa.py_buffer(b"".join(encoded))])
    return from_numpy(np.asarray(values, dtype=kind.to_pandas_dtype()), kind)


def _offsets(lengths: Iterable[int]) -> pa.Array:
    """int32 offsets of consecutive items of ``lengths``, starting at 0."""
    counts = np.fromiter(lengths, dtype=np.int32)
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return from_numpy(offsets, pa.int32())
