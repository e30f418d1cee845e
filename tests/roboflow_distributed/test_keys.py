"""keys.py builds every key and parses back the ones read from a scan."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from roboflow_core.errors import CoordinationError
from roboflow_distributed import keys


def test_round_trips() -> None:
    assert keys.batch_of_status(keys.batch_status("b-20260101-abc")) == "b-20260101-abc"
    assert keys.batch_of_active(keys.active("b-1")) == "b-1"
    assert keys.parse_pending(keys.pending("b-1", "0123abcd")) == ("b-1", "0123abcd")
    assert keys.parse_expiry(keys.expiry("b-1", 1796400969.7)) == (1796400969, "b-1")
    assert keys.expiry("b-1", 9) < keys.expiry("a-1", 10), "sorted by time, not by batch"
    assert keys.checkpoint("b-1", "u").startswith(keys.checkpoints_of("b-1"))
    assert not keys.checkpoint("b-10", "u").startswith(keys.checkpoints_of("b-1"))


@pytest.mark.parametrize(
    ("parse", "key"),
    [
        (keys.batch_of_status, keys.batch_spec("b-1")),  # another layout
        (keys.batch_of_status, keys.BATCH_STATUSES),  # the bare prefix
        (keys.batch_of_active, keys.active("b-1") + "/extra"),
        (keys.parse_pending, keys.pending_of("b-1")),  # no unit
        (keys.parse_pending, keys.pending("b-1", "u") + "/x"),
        (keys.parse_expiry, keys.EXPIRY + "soon/b-1"),  # no time
    ],
)
def test_a_key_of_another_layout_is_refused_naming_it(parse: Callable[[str], object], key: str) -> None:
    with pytest.raises(CoordinationError) as caught:
        parse(key)
    assert caught.value.context["key"] == key
