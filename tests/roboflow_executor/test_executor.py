import io
import threading
import time
from collections.abc import Iterator

import pytest

from roboflow_core import telemetry
from roboflow_executor import Prefetcher, Progress, prefetch


def test_prefetch_keeps_order_and_ends() -> None:
    assert list(prefetch(range(100), depth=3)) == list(range(100))


def test_prefetch_is_bounded() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for i in range(50):
            produced.append(i)
            yield i

    pre = Prefetcher(source(), depth=4)
    it = iter(pre)
    assert next(it) == 0
    time.sleep(0.2)
    # one taken, at most `depth` waiting, one blocked in put
    assert len(produced) <= 1 + 4 + 1
    pre.close()


def test_prefetch_reraises_in_consumer_at_the_failing_position() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("bad message at 3")

    got: list[int] = []
    with pytest.raises(ValueError, match="bad message at 3"):
        for item in prefetch(source()):
            got.append(item)
    assert got == [1, 2]


@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 50])
def test_batched_prefetch_keeps_order_and_a_short_last_batch(count: int) -> None:
    assert list(Prefetcher(range(count), depth=8, batch=4)) == list(range(count))


def test_batched_prefetch_hands_over_the_first_item_at_once() -> None:
    """The consumer gets the first item while the source is still working on the second (the
    source waits for the consumer's go: a batch-of-4 hand-over would have it wait in vain)."""
    go = threading.Event()
    went: list[bool] = []

    def source() -> Iterator[int]:
        yield 0
        went.append(go.wait(2))
        yield 1

    it = iter(Prefetcher(source(), depth=8, batch=4))
    assert next(it) == 0
    go.set()
    assert list(it) == [1]
    assert went == [True]


def test_batched_prefetch_is_bounded_by_depth_plus_two_batches() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for i in range(100):
            produced.append(i)
            yield i

    pre = Prefetcher(source(), depth=8, batch=4)
    it = iter(pre)
    assert next(it) == 0
    time.sleep(0.2)
    # the batch being consumed, `depth` items (2 batches) waiting, one batch blocked in put
    assert 8 < len(produced) <= 4 + 8 + 4 + 1
    pre.close()


def test_batched_prefetch_reraises_after_the_items_before_the_failure() -> None:
    def source() -> Iterator[int]:
        yield from range(6)
        raise ValueError("bad message at 6")

    got: list[int] = []
    with pytest.raises(ValueError, match="bad message at 6"):
        for item in Prefetcher(source(), depth=8, batch=4):
            got.append(item)
    assert got == list(range(6))


def test_the_source_s_time_is_the_stage_s_but_not_the_waits_to_hand_over() -> None:
    def slow() -> Iterator[int]:
        for i in range(8):
            time.sleep(0.01)
            yield i

    with (
        telemetry.job_trace("test.job", {"roboflow.job": "j"}) as job,
        Prefetcher(slow(), depth=2, batch=2, stage="decode") as ahead,
    ):
        for _ in ahead:
            time.sleep(0.04)  # the producer waits on a full queue meanwhile (~0.2 s)
    assert 0.08 <= job.busy("decode") < 0.2


def test_closing_early_stops_the_producer() -> None:
    def endless() -> Iterator[int]:
        i = 0
        while True:
            yield i
            i += 1

    name = "test-closing-early-producer"
    for item in prefetch(endless(), depth=2, name=name):
        if item == 5:
            break
        assert any(t.name == name for t in threading.enumerate())
    deadline = time.monotonic() + 5
    while any(t.name == name for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.name == name for t in threading.enumerate())


def test_progress_renders_rate_and_eta() -> None:
    stream = io.StringIO()
    progress = Progress(total=10, label="convert", stream=stream, force=True, interval=0)
    progress.advance(5)
    progress.finish()
    line = stream.getvalue()
    assert "5/10 frames" in line
    assert "ETA" in line
    assert line.endswith("\n")


def test_progress_is_silent_off_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(total=3, stream=stream)
    progress.advance(3)
    progress.finish()
    assert stream.getvalue() == ""
    assert progress.done == 3
