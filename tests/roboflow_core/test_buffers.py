"""BufferPool: a buffer is handed out again only once nothing made from it is left, only for sizes
it fits closely, and the pool keeps at most its count and bytes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from roboflow_core.buffers import MIN_POOLED, BufferPool

SIZE = 100_000
assert SIZE >= MIN_POOLED


def _address(array: np.ndarray) -> int:
    return int(array.__array_interface__["data"][0])


HOLDERS: dict[str, Callable[[np.ndarray], Any]] = {
    "the array": lambda a: a,
    "a numpy slice": lambda a: a[10:20],
    "a reshaped view": lambda a: a[:1000].reshape(10, 100)[::2, 1:],
    "a memoryview slice": lambda a: a.data[5:50].toreadonly(),
    "an array over a memoryview": lambda a: np.frombuffer(a.data[8:1608], np.float64),
    "a view of that array": lambda a: np.frombuffer(a.data[8:1608], np.float64)[3:7].view(np.uint8),
}


@pytest.mark.parametrize("holder", HOLDERS.values(), ids=HOLDERS.keys())
def test_a_buffer_comes_back_only_when_nothing_made_from_it_is_left(
    holder: Callable[[np.ndarray], Any],
) -> None:
    pool = BufferPool(4, 1 << 30)
    first = pool.take(SIZE)
    address = _address(first)
    held = holder(first)
    del first
    while_held = [pool.take(SIZE) for _ in range(3)]  # the pool keeps 4: none of them is the held one
    assert address not in {_address(a) for a in while_held}
    del while_held
    again = pool.take(SIZE)
    assert _address(again) != address  # still held: the free ones come first, none is it
    del held, again
    assert _address(pool.take(SIZE)) == address  # free now, and the least recently taken


def test_what_is_written_to_a_held_buffer_survives_later_takes() -> None:
    pool = BufferPool(8, 1 << 30)
    held = []
    for i in range(50):
        array = pool.take(SIZE)
        array[:] = i
        if i % 3 == 0:
            held.append((i, array[100:900].data.toreadonly()))
    for i, view in held:
        assert bytes(view) == bytes([i]) * 800


def test_sizes_fit_closely() -> None:
    pool = BufferPool(8, 1 << 30)
    array = pool.take(160_000)
    assert array.dtype == np.uint8 and array.ndim == 1 and array.flags.writeable
    assert 160_000 <= len(array) <= 160_000 + 160_000 // 8
    address = _address(array)
    del array
    assert _address(pool.take(80_000)) != address  # twice the size wanted: a new one
    reused = pool.take(155_000)  # the buffer (160000 + 10000 to spare) is at most an eighth more
    assert _address(reused) == address and len(reused) >= 155_000
    del reused
    assert len(pool.take(170_000)) >= 170_000


def test_small_buffers_are_not_kept() -> None:
    pool = BufferPool(8, 1 << 30)
    small = pool.take(MIN_POOLED - 1)
    assert len(small) == MIN_POOLED - 1 and small.flags.writeable
    assert len(pool.take(0)) == 0
    assert pool.nbytes == 0


def test_it_keeps_at_most_count_buffers() -> None:
    pool = BufferPool(3, 1 << 30)
    held = [pool.take(SIZE) for _ in range(5)]
    kept = {_address(a) for a in held[2:]}  # the last three taken
    del held
    again = [pool.take(SIZE) for _ in range(4)]
    assert {_address(a) for a in again[:3]} == kept
    assert _address(again[3]) not in kept


def test_it_keeps_at_most_max_bytes() -> None:
    """Sizes that never fit each other's buffers: the pool lets the oldest go, and keeps none larger
    than itself."""
    pool = BufferPool(100, 1 << 20)
    taken = 0
    for size in range(100_000, 1_000_000, 50_000):
        taken += len(pool.take(size))
        assert 0 < pool.nbytes <= 1 << 20
    assert taken > 4 << 20
    kept = pool.nbytes
    huge = pool.take(2 << 20)
    assert len(huge) >= 2 << 20 and pool.nbytes == kept
