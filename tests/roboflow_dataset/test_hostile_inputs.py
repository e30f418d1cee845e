"""Hostile recordings end in a clear error naming the file, in seconds, under a 1 GiB memory limit.

Each conversion runs in a child process whose address space is capped (``RLIMIT_AS``, 1 GiB): a
reader that trusted a declared size would die of it (or, with the error turned into a generic
one, fail the reason check here). The child reports the error, its peak RSS and its time.
"""

from __future__ import annotations

import bz2
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from tests.roboflow_dataset import _hostile as hostile

from roboflow_core import CorruptRecordingError, RecordingLimitError
from roboflow_dataset.sources import _sqlite, open_source
from roboflow_dataset.sources._limits import decompress
from roboflow_dataset.synth import write_recording

LIMIT_BYTES = 1 << 30
SECONDS = 60.0  # each conversion, imports included; they take a few seconds

_CHILD = """
import json, resource, sys, time
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from pathlib import Path
from roboflow_core import RoboflowError, loads_config
from roboflow_pipeline import convert_recording
config = loads_config(Path(sys.argv[2]).read_text())
def peak_kb():
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
for line in sys.stdin:
    name, recording, stage = json.loads(line)
    started = time.monotonic()
    try:
        convert_recording(recording, config, Path(stage))
        out = {"kind": None}
    except RoboflowError as err:
        kinds = [c.__name__ for c in type(err).__mro__]
        out = {"kind": type(err).__name__, "kinds": kinds, "message": str(err), "transient": err.transient}
    out["seconds"] = time.monotonic() - started
    # VmHWM, not ru_maxrss: after a vfork+exec, ru_maxrss starts from the parent's (pytest's) peak
    out["rss_mb"] = peak_kb() / 1024
    print(json.dumps([name, out]), flush=True)
"""


def convert_limited(recordings: dict[str, Path], work: Path) -> dict[str, dict[str, object]]:
    """Convert each recording, one after another, in one child under the memory limit; what it
    reported for each (the child imports once: the imports take longer than the conversions)."""
    config = work / "hostile.toml"
    config.write_text(hostile.HOSTILE_CONFIG, encoding="utf-8")
    jobs = "".join(
        json.dumps([name, str(path), str(work / f"stage-{i}")]) + "\n"
        for i, (name, path) in enumerate(recordings.items())
    )
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(LIMIT_BYTES), str(config)],
        input=jobs,
        capture_output=True,
        text=True,
        timeout=SECONDS * (len(recordings) + 1),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {name: report for name, report in map(json.loads, done.stdout.strip().splitlines())}


CASES: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    # name: (craft, error kind, what the reason says)
    "ros1-bz2-bomb-lying-size": (
        lambda d: hostile.ros1_bz2_bomb(d / "bomb.bag", declared=1 << 20),
        "CorruptRecordingError",
        r"holds more than 1048576 bytes, its header says 1048576",
    ),
    "ros1-bz2-bomb-honest-size": (
        lambda d: hostile.ros1_bz2_bomb(d / "bomb.bag", declared=hostile.BZ2_BOMB_BYTES),
        "CorruptRecordingError",
        r"declares 2147483648 bytes, more than the 256 MiB",
    ),
    "mcap-zstd-2^40-unindexed": (
        lambda d: hostile.mcap_zstd_bomb(d / "bomb.mcap", indexed=False),
        "CorruptRecordingError",
        r"zstd chunk at offset \d+ declares 1099511627776 bytes",
    ),
    "mcap-zstd-2^40-indexed": (
        lambda d: hostile.mcap_zstd_bomb(d / "bomb.mcap", indexed=True),
        "CorruptRecordingError",
        r"zstd chunk at offset \d+ declares 1099511627776 bytes",
    ),
    "mcap-record-length-2^63": (
        lambda d: hostile.mcap_huge_record(d / "huge.mcap"),
        "CorruptRecordingError",
        r"9223372036854775808",
    ),
    "topics-1e9-s-apart": (
        lambda d: hostile.mcap_far_apart(d / "far.mcap"),
        "CorruptRecordingError",
        r"span 1,000,000,000 s, more than \[dataset\] max_episode_seconds = 21,600 s",
    ),
    "png-20000x20000": (
        lambda d: hostile.mcap_huge_png(d / "png.mcap", 20000, 20000),
        "DecodeError",
        r"20000x20000 pixels is larger than|400000000 pixels\) exceeds limit",  # Pillow's own check, first
    ),
    "png-12000x12000-below-pillows-own-limit": (
        lambda d: hostile.mcap_huge_png(d / "png.mcap", 12000, 12000),
        "DecodeError",
        r"12000x12000 pixels is larger than",
    ),
    "db3-recursive-view": (
        lambda d: hostile.db3_recursive_view(d / "view_bag"),
        "CorruptRecordingError",
        r"'messages' is a view, not a table",
    ),
    "log-time-2^64-1": (
        lambda d: hostile.mcap_max_log_time(d / "time.mcap"),
        "CorruptRecordingError",
        r"log time 18446744073709551615 ns, outside 0..2\^63-1",
    ),
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Every case crafted and converted under the limit (one child for all)."""
    work = tmp_path_factory.mktemp("hostile")
    recordings = {}
    for name, (craft, _, _) in CASES.items():
        (work / name).mkdir()
        recordings[name] = craft(work / name)
        files = list(recordings[name].rglob("*")) if recordings[name].is_dir() else [recordings[name]]
        assert sum(f.stat().st_size for f in files) < 8 << 20, "crafted files are small"
    found = convert_limited(recordings, work)
    return {name: {**found[name], "file": recordings[name].name} for name in CASES}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_recording_ends_in_a_clear_error_within_bounds(
    case: str, reports: dict[str, dict[str, object]]
) -> None:
    _, kind, reason = CASES[case]
    report = reports[case]
    assert kind in report["kinds"], report  # that class or a subclass (RecordingLimitError)
    message = str(report["message"])
    assert str(report["file"]) in message, message
    assert re.search(reason, message), message
    assert report["transient"] is False, "a hostile recording must not be retried"
    assert float(str(report["seconds"])) < SECONDS / 2, report
    assert float(str(report["rss_mb"])) < 700, report
    assert "MemoryError" not in message and "OverflowError" not in message


def test_the_bomb_is_live() -> None:
    """The bz2 payload really expands far beyond what it declares (the test would prove nothing else)."""
    decompressor = bz2.BZ2Decompressor()
    out = decompressor.decompress(hostile._BZ2_BOMB, max_length=64 << 20)
    assert len(out) == 64 << 20 and not decompressor.eof


def test_the_indexed_read_of_a_bomb_is_bounded_too(tmp_path: Path) -> None:
    """Two-pass reads go through the summary's chunk index (not the forward reader)."""
    path = hostile.mcap_zstd_bomb(tmp_path / "bomb.mcap", indexed=True)
    with open_source(path) as source, pytest.raises(CorruptRecordingError, match="declares 1099511627776"):
        list(source.messages())


def test_a_db3_query_that_stalls_is_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain tables, but a query that yields no row before the stall limit is cut off (the limit
    made zero here, checked every VM step, so the first aggregate stalls)."""
    bag = write_recording(tmp_path / "bag", "ros2-db3", duration_s=0.5, width=16, height=12).path
    monkeypatch.setattr(_sqlite, "QUERY_STALL_S", 0.0)
    monkeypatch.setattr(_sqlite, "_PROGRESS_STEPS", 1)
    stalled = r"cannot read message definitions: a query produced no row for 0 s"
    with pytest.raises(CorruptRecordingError, match=stalled), open_source(bag) as source:
        source.topics()


@pytest.mark.parametrize("declared", [1 << 20, (1 << 20) - 1])
def test_zstd_chunk_larger_than_declared_stops_past_its_size(declared: int) -> None:
    """A zstd chunk is decompressed into a buffer of its declared size plus one byte: more data
    than that (a frame of 64 MiB of zeros here) is refused once the buffer is full."""
    data = zstandard.ZstdCompressor(write_content_size=False).compress(b"\0" * (64 << 20))
    with pytest.raises(RecordingLimitError, match=f"holds more than {declared} bytes, its header says"):
        decompress("zstd", data, declared, path="bomb.mcap", offset=8)
    honest = zstandard.ZstdCompressor().compress(b"ab" * (declared // 2))
    assert decompress("zstd", honest, declared // 2 * 2, path="ok.mcap", offset=8) == b"ab" * (declared // 2)
