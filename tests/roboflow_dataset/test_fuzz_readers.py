"""Property-based fuzzing of the forward readers, the message decoders and the image decoders.

Inputs are real recordings (and crafted bombs) with bytes changed, inserted or cut, or plain
random bytes. Whatever comes in, only :class:`~roboflow_core.RoboflowError` may come out, each
example within its deadline, and the process's peak memory stays bounded. Example counts are
small so CI stays fast; ``HYPOTHESIS_PROFILE=long`` runs more.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from PIL import Image
from tests.roboflow_dataset import _hostile as hostile

from roboflow_core import RoboflowError
from roboflow_dataset.extract import ImageExtractor, VectorExtractor
from roboflow_dataset.sources import Message, open_source
from roboflow_dataset.sources._mcap import iter_mcap_records
from roboflow_dataset.sources._model import Channel
from roboflow_dataset.sources._ros1_stream import iter_ros1_records
from roboflow_dataset.synth import write_recording
from roboflow_media import decode_compressed_image, decode_raw_image

# Hypothesis caches on disk from the moment this module is collected: in a temporary directory
# removed at exit, not the repository.
_HOME = tempfile.mkdtemp(prefix="roboflow-hypothesis-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
set_hypothesis_home_dir(_HOME)

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=5000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("long", max_examples=2000, deadline=5000, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_GROWTH_MB = 600  # peak RSS may grow this much over a whole fuzz test (bombs decompress 1 MiB)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Valid recordings (and crafted bombs) to mutate."""
    work = tmp_path_factory.mktemp("fuzz")
    found = {
        "bag": write_recording(work / "a.bag", "ros1", duration_s=0.3, width=16, height=12).path,
        "mcap": write_recording(work / "a.mcap", "mcap", duration_s=0.3, width=16, height=12).path,
        "bag-bomb": hostile.ros1_bz2_bomb(work / "bomb.bag", declared=1 << 20),
        "mcap-bomb": hostile.mcap_zstd_bomb(work / "bomb.mcap", indexed=True),
    }
    return {name: Path(path).read_bytes() for name, path in found.items()}


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few bytes overwritten, a run inserted, and possibly cut short."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=16))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def _peak_mb() -> float:
    """This process's peak RSS (VmHWM)."""
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) / 1024


def _fresh_peak_mb() -> float:
    """Reset the peak RSS to the current RSS (``clear_refs`` 5) and return it: growth is then
    measured from here, not hidden under whatever an earlier test in this process peaked at."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    return _peak_mb()


def _only_roboflow_errors(read: Callable[[], Iterator[Any]]) -> None:
    try:
        for _ in read():
            pass
    except RoboflowError:
        pass


@pytest.mark.parametrize("seed", ["bag", "bag-bomb"])
def test_iter_ros1_records_raises_only_roboflow_errors(seeds: dict[str, bytes], seed: str) -> None:
    before = _fresh_peak_mb()

    @given(data=mutated(seeds[seed]))
    def check(data: bytes) -> None:
        _only_roboflow_errors(lambda: iter_ros1_records(io.BytesIO(data), "fuzz.bag"))

    check()
    assert _peak_mb() - before < _GROWTH_MB


@pytest.mark.parametrize("seed", ["mcap", "mcap-bomb"])
def test_iter_mcap_records_raises_only_roboflow_errors(seeds: dict[str, bytes], seed: str) -> None:
    before = _fresh_peak_mb()

    @given(data=mutated(seeds[seed]))
    def check(data: bytes) -> None:
        _only_roboflow_errors(lambda: iter_mcap_records(io.BytesIO(data), "fuzz.mcap", {}))

    check()
    assert _peak_mb() - before < _GROWTH_MB


@given(data=st.binary(max_size=4096))
def test_random_bytes_after_either_magic_raise_only_roboflow_errors(data: bytes) -> None:
    _only_roboflow_errors(lambda: iter_ros1_records(io.BytesIO(b"#ROSBAG V2.0\n" + data), "fuzz.bag"))
    _only_roboflow_errors(lambda: iter_mcap_records(io.BytesIO(hostile.MCAP_MAGIC + data), "fuzz.mcap", {}))


# --- message decoders ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def payloads(seeds: dict[str, bytes]) -> list[tuple[Channel, bytes]]:
    """One real payload of every channel of the sample bag (ROS1) and MCAP (CDR)."""
    found: dict[tuple[str, str], tuple[Channel, bytes]] = {}
    for name, records in (
        ("bag", iter_ros1_records(io.BytesIO(seeds["bag"]), "seed.bag")),
        ("mcap", iter_mcap_records(io.BytesIO(seeds["mcap"]), "seed.mcap", {})),
    ):
        for _, channel, data in records:
            found.setdefault((name, channel.topic), (channel, data))
    return list(found.values())


def _decode_all(channel: Channel, data: bytes) -> None:
    message = Message(channel, 1, data)
    try:
        message.header_stamp_ns  # noqa: B018 - reading it is the test
        value = message.decode()
        if "Image" in channel.msgtype:
            ImageExtractor(channel.topic, channel.msgtype).from_message(message)
        else:
            VectorExtractor(channel.topic, channel.msgtype, None, None).from_message(message)
        assert value is not None
    except RoboflowError:
        pass


def test_message_decoders_raise_only_roboflow_errors(payloads: list[tuple[Channel, bytes]]) -> None:
    assert {c.encoding for c, _ in payloads} == {"ros1", "cdr"} and len(payloads) >= 6
    before = _fresh_peak_mb()

    @given(pick=st.integers(0, len(payloads) - 1), data=st.data())
    def check(pick: int, data: st.DataObject) -> None:
        channel, payload = payloads[pick]
        _decode_all(channel, data.draw(st.one_of(mutated(payload), st.binary(max_size=256))))

    check()
    assert _peak_mb() - before < _GROWTH_MB


# --- image decoders -----------------------------------------------------------------------------


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.arange(24 * 16 * 3, dtype=np.uint8).reshape(16, 24, 3)).save(buffer, format=fmt)
    return buffer.getvalue()


@given(data=st.data(), fmt=st.sampled_from(["png", "jpeg", "16UC1; compressedDepth png"]))
def test_compressed_image_decoder_raises_only_roboflow_errors(data: st.DataObject, fmt: str) -> None:
    seed = _encoded("PNG" if "png" in fmt else "JPEG")
    payload = data.draw(st.one_of(mutated(seed), st.binary(max_size=512)))
    with contextlib.suppress(RoboflowError):
        decode_compressed_image(payload, fmt)


@given(
    height=st.integers(0, 1 << 20),
    width=st.integers(0, 1 << 20),
    step=st.integers(0, 1 << 22),
    encoding=st.sampled_from(["rgb8", "bgra8", "mono16", "32FC1", "bayer_rggb8", "yuv422"]),
    size=st.integers(0, 4096),
)
def test_raw_image_decoder_raises_only_roboflow_errors(
    height: int, width: int, step: int, encoding: str, size: int
) -> None:
    with contextlib.suppress(RoboflowError):
        decode_raw_image(bytes(size), height=height, width=width, encoding=encoding, step=step)


def test_a_png_too_large_is_refused_from_its_header() -> None:
    # Pillow warns from 89 MP (an error under pytest's warning filter), our bound is 67 MP
    with pytest.raises(RoboflowError, match=r"12000x12000 pixels is larger than|144000000 pixels\) exceeds"):
        decode_compressed_image(hostile.huge_png(12000, 12000), "png")


@pytest.mark.parametrize(
    ("seed", "name"), [("bag", "fuzz.bag"), ("mcap", "fuzz.mcap"), ("mcap-bomb", "fuzz.mcap")]
)
def test_the_indexed_readers_raise_only_roboflow_errors(
    seeds: dict[str, bytes], seed: str, name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The two-pass path: rosbags' indexed reader behind Ros1Storage, the summary and chunk-index
    read of McapStorage (a mutated index, summary or footer)."""
    work = tmp_path_factory.mktemp("indexed")
    before = _fresh_peak_mb()

    @given(data=mutated(seeds[seed]))
    def check(data: bytes) -> None:
        path = work / name
        path.write_bytes(data)
        try:
            with open_source(path) as source:
                source.topics()
                for _ in source.messages():
                    pass
        except RoboflowError:
            pass

    check()
    assert _peak_mb() - before < _GROWTH_MB
