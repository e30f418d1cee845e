"""The one retry helper: backoff from a RetryPolicy, only for retryable errors, stoppable."""

from __future__ import annotations

import pytest

from roboflow_core import CoordinationError, CorruptRecordingError
from roboflow_storage import RetryPolicy, retry_call

POLICY = RetryPolicy(max_retries=3, initial_backoff_s=0.01, max_backoff_s=0.02)


def test_transient_errors_are_retried_with_jittered_backoff_then_raised() -> None:
    calls: list[int] = []
    waits: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise CoordinationError("store down")
        return "ok"

    assert retry_call(flaky, POLICY, on_retry=lambda _err, delay: waits.append(delay)) == "ok"
    assert len(calls) == 3 and len(waits) == 2 and all(0 <= w <= 0.02 for w in waits)


def test_permanent_errors_are_not_retried_and_a_stopped_wait_raises_at_once() -> None:
    calls: list[int] = []

    def corrupt() -> None:
        calls.append(1)
        raise CorruptRecordingError("bad chunk", path="a.bag")

    with pytest.raises(CorruptRecordingError):
        retry_call(corrupt, POLICY)
    assert calls == [1]

    def down() -> None:
        calls.append(1)
        raise CoordinationError("store down")

    calls.clear()
    with pytest.raises(CoordinationError):
        retry_call(down, POLICY, wait=lambda _delay: False)
    assert calls == [1]
    calls.clear()
    with pytest.raises(CoordinationError):
        retry_call(down, POLICY, wait=lambda _delay: True)
    assert len(calls) == POLICY.max_retries + 1
