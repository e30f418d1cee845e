"""Forward-only readers: ROS1 bags and MCAP files read with ``read`` alone, in file order."""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, cast

import numpy as np
import pytest
from rosbags.rosbag1 import Reader as RosbagsReader
from rosbags.rosbag1 import Writer as RosbagsWriter

from roboflow_core.errors import CorruptRecordingError, UnknownFormatError
from roboflow_dataset import _synth_writers
from roboflow_dataset.sources._mcap import McapStorage, iter_mcap_records
from roboflow_dataset.sources._model import Channel, Payload
from roboflow_dataset.sources._ros1 import Ros1Storage
from roboflow_dataset.sources._ros1_stream import iter_ros1_records
from roboflow_dataset.sources._storage import Record
from roboflow_dataset.synth import write_recording

SAMPLES = Path(__file__).parents[2].parent / "shared" / "samples"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"sample recordings not found at {SAMPLES}")

ROS1_SAMPLES = [
    "evo/ROS_example.bag",
    "evo/tf_example.bag",
    "rosbag.js/example.bag",
    "rosbag.js/example-lz4.bag",
    "rosbag.js/example-bz2.bag",
    "rosbag.js/example-unsorted-chunks.bag",
    "rosbag.js/no-messages.bag",
    "embag/test.bag",
    "embag/array_test.bag",
    "embag/test_2.bag",
]
UNSORTED = "rosbag.js/example-unsorted-chunks.bag"  # file order is not log-time order
MCAP_SAMPLES = [
    "evo/nav2_turtlebot.mcap",
    "rosbag2/mcap/talker/talker.mcap",
    "rosbag2/mcap/multiple_files/multiple_files_1.mcap",
    "rosbag2/mcap/cdr_test/cdr_test_0.mcap",
]

Row = tuple[int, tuple[object, ...], Payload]


class ForwardOnly:
    """A stream that only reads forward, in short pieces of varying size; seeking fails the test."""

    SIZES = (1, 3, 1000, 17, 999, 2)  # below 4 splits record lengths, 1000 splits headers and data

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0
        self._turn = 0
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        limit = self.SIZES[self._turn % len(self.SIZES)]
        self._turn += 1
        self.reads += 1
        size = limit if size < 0 else min(size, limit)
        piece = self._data[self._pos : self._pos + size]
        self._pos += len(piece)
        return piece

    @property
    def consumed(self) -> int:
        return self._pos

    def seek(self, *_: object) -> int:
        raise AssertionError("the reader seeked")

    def tell(self) -> int:
        raise AssertionError("the reader asked for its position")


class ForwardInto(ForwardOnly):
    """:class:`ForwardOnly` with ``readinto`` (as files have), filling in the same short pieces."""

    def readinto(self, buffer: memoryview) -> int:
        piece = self.read(len(buffer))
        buffer[: len(piece)] = piece
        return len(piece)


def _forward(data: bytes) -> IO[bytes]:
    return cast(IO[bytes], ForwardOnly(data))


def _fields(channel: Channel) -> tuple[object, ...]:
    return (
        channel.path,
        channel.topic,
        channel.msgtype,
        channel.encoding,
        channel.schema_encoding,
        channel.schema,
    )


def _by_topic(records: Iterable[Record] | Iterable[Row]) -> dict[str, list[Row]]:
    topics: dict[str, list[Row]] = defaultdict(list)
    for log_time, channel, data in records:
        fields = _fields(channel) if isinstance(channel, Channel) else channel
        topics[cast(str, fields[1])].append((log_time, fields, data))
    return dict(topics)


def _rosbags_records(path: Path) -> dict[str, list[Row]]:
    storage = Ros1Storage(path)
    try:
        return _by_topic(storage.read(None, None))
    finally:
        storage.close()


def _collect(records: Iterable[Record], into: list[Row]) -> None:
    """Append the rows of ``records`` one by one (those before an error stay)."""
    for log_time, channel, data in records:
        into.append((log_time, _fields(channel), data))


def _stream_records(path: Path, data: bytes | None = None) -> list[Row]:
    rows: list[Row] = []
    _collect(iter_ros1_records(_forward(path.read_bytes() if data is None else data), path), rows)
    return rows


def _write_bag(path: Path, compression: str, *, compressed_images: bool, chunk_bytes: int = 64 << 10) -> Path:
    """A synthetic ROS1 bag with the given chunk compression and several chunks."""

    class Writer(RosbagsWriter):
        def __init__(self, bag: Path) -> None:
            super().__init__(bag)
            self.chunk_threshold = chunk_bytes
            if compression != "none":
                self.set_compression(RosbagsWriter.CompressionFormat[compression.upper()])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_synth_writers, "Ros1Writer", Writer)
        write_recording(path, "ros1", duration_s=1.0, width=64, height=48, compressed=compressed_images)
    return path


@pytest.fixture
def bag(tmp_path: Path) -> Path:
    """An uncompressed synthetic bag of several chunks."""
    return _write_bag(tmp_path / "synth.bag", "none", compressed_images=False, chunk_bytes=16 << 10)


class _Layout:
    """Where rosbags finds the chunks and the index of ``path``."""

    def __init__(self, path: Path) -> None:
        with RosbagsReader(path) as reader:
            self.chunks = [(info.pos, reader.chunks[info.pos]) for info in reader.chunk_infos]
            self.messages = [sum(info.connection_counts.values()) for info in reader.chunk_infos]
        data = path.read_bytes()
        self.index_pos = struct.unpack_from("<Q", data, data.index(b"index_pos=") + len(b"index_pos="))[0]
        self.size = len(data)


def _unindexed(data: bytes) -> bytes:
    """``data`` with the bag header's index_pos zeroed (a bag still being recorded)."""
    at = data.index(b"index_pos=") + len(b"index_pos=")
    return data[:at] + bytes(8) + data[at + 8 :]


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _record(fields: dict[str, bytes], data: bytes) -> bytes:
    header = b"".join(
        struct.pack("<I", len(k) + 1 + len(v)) + k.encode() + b"=" + v for k, v in fields.items()
    )
    return struct.pack("<I", len(header)) + header + struct.pack("<I", len(data)) + data


@pytest.mark.parametrize("compression", ["none", "lz4", "bz2"])
@pytest.mark.parametrize("compressed_images", [False, True], ids=["raw", "jpeg"])
def test_ros1_synth_bag_matches_rosbags(tmp_path: Path, compression: str, compressed_images: bool) -> None:
    path = _write_bag(tmp_path / "synth.bag", compression, compressed_images=compressed_images)
    data = path.read_bytes()
    assert f"compression={compression}".encode() in data
    assert len(_Layout(path).chunks) > 1
    expected = _rosbags_records(path)
    assert sum(map(len, expected.values())) > 0
    assert _by_topic(_stream_records(path)) == expected


@needs_samples
@pytest.mark.parametrize("name", ROS1_SAMPLES)
def test_ros1_sample_matches_rosbags(name: str) -> None:
    path = SAMPLES / name
    expected = _rosbags_records(path)
    got = _by_topic(_stream_records(path))
    if name == UNSORTED:  # file order; rosbags sorts by log time (stably)
        assert got != expected
        got = {topic: sorted(rows, key=lambda row: row[0]) for topic, rows in got.items()}
    assert got == expected


def test_ros1_stream_reads_in_file_order_and_only_forward(bag: Path) -> None:
    data = bag.read_bytes()
    stream = ForwardOnly(data)
    records: list[Row] = []
    _collect(iter_ros1_records(cast(IO[bytes], stream), bag), records)
    assert stream.consumed == len(data)
    assert stream.reads > len(data) // 1000  # short reads were continued
    layout = _Layout(bag)
    assert len(records) == sum(layout.messages)
    assert [r[0] for r in records] == sorted(r[0] for r in records)  # synth bags are written in time order


def _cuts(layout: _Layout) -> dict[str, int]:
    (first_pos, first), (_, last) = layout.chunks[0], layout.chunks[-1]
    return {
        "magic": 5,
        "bag header": 13 + 40,
        "chunk header": first_pos + 10,
        "first chunk data": first.datapos + first.datasize // 2,
        "last chunk data": last.datapos + last.datasize - 1,
        "index data": last.datapos + last.datasize + 10,
        "connection in index": layout.index_pos + 10,
        "chunk info": layout.size - 3,
    }


@pytest.mark.parametrize(
    "where",
    [
        "magic",
        "bag header",
        "chunk header",
        "first chunk data",
        "last chunk data",
        "index data",
        "connection in index",
        "chunk info",
    ],
)
def test_ros1_truncated_bag_is_corrupt(bag: Path, where: str) -> None:
    layout = _Layout(bag)
    cut = _cuts(layout)[where]
    full = _stream_records(bag)
    got: list[Row] = []
    with pytest.raises(CorruptRecordingError, match="truncated") as info:
        _collect(iter_ros1_records(_forward(bag.read_bytes()[:cut]), bag), got)
    assert info.value.path == str(bag)
    assert got == full[: len(got)]  # whole messages only, of the chunks before the cut
    if where in ("index data", "connection in index", "chunk info"):
        assert len(got) == len(full)


@pytest.mark.parametrize("chunks", [1, 2])
def test_ros1_cut_after_complete_chunks(bag: Path, chunks: int) -> None:
    """Indexed: the missing index section is damage. Unindexed (being recorded): the end."""
    layout = _Layout(bag)
    cut = layout.chunks[chunks][0]  # the next chunk's offset: the chunks before and their index data
    data = bag.read_bytes()[:cut]
    complete = _stream_records(bag)[: sum(layout.messages[:chunks])]
    got: list[Row] = []
    with pytest.raises(CorruptRecordingError, match="index section") as info:
        _collect(iter_ros1_records(_forward(data), bag), got)
    assert info.value.path == str(bag)
    assert got == complete
    assert _stream_records(bag, _unindexed(data)) == complete


def test_ros1_unindexed_bag_reads_to_eof(bag: Path) -> None:
    layout = _Layout(bag)
    data = _unindexed(bag.read_bytes()[: layout.index_pos])
    with pytest.raises(CorruptRecordingError, match="Bag is not indexed"):
        Ros1Storage(_write_bytes(bag.with_name("unindexed.bag"), data))
    assert _stream_records(bag, data) == _stream_records(bag)
    _, last = layout.chunks[-1]
    with pytest.raises(CorruptRecordingError, match="truncated"):
        _stream_records(bag, data[: last.datapos + 100])


def test_ros1_unfinished_chunk_with_top_level_records(bag: Path) -> None:
    """An unfinished uncompressed chunk: an empty chunk record, then its records at the top level."""
    layout = _Layout(bag)
    data = bag.read_bytes()
    last_pos, last = layout.chunks[-1]
    empty_chunk = _record({"op": b"\x05", "compression": b"none", "size": bytes(4)}, b"")
    unfinished = data[:last_pos] + empty_chunk + data[last.datapos : last.datapos + last.datasize]
    assert _stream_records(bag, _unindexed(unfinished)) == _stream_records(bag)


def test_ros1_unknown_compression_is_named(bag: Path) -> None:
    data = bag.read_bytes().replace(b"compression=none", b"compression=zstd")
    with pytest.raises(CorruptRecordingError, match=r"'zstd'.*not supported") as info:
        _stream_records(bag, data)
    assert info.value.path == str(bag)


def test_ros1_damaged_lz4_chunk_is_corrupt(tmp_path: Path) -> None:
    path = _write_bag(tmp_path / "lz4.bag", "lz4", compressed_images=False)
    _, first = _Layout(path).chunks[0]
    data = bytearray(path.read_bytes())
    data[first.datapos : first.datapos + 4] = b"XXXX"  # the lz4 frame magic
    with pytest.raises(CorruptRecordingError, match="decompress the lz4 chunk") as info:
        _stream_records(path, bytes(data))
    assert info.value.path == str(path)


def test_ros1_damaged_record_inside_chunk_is_corrupt(bag: Path) -> None:
    first_pos, first = _Layout(bag).chunks[0]
    data = bytearray(bag.read_bytes())
    data[first.datapos : first.datapos + 4] = struct.pack("<I", first.datasize)  # first header too long
    with pytest.raises(CorruptRecordingError, match=f"parse the chunk at offset {first_pos}"):
        _stream_records(bag, bytes(data))


def test_ros1_message_before_its_connection_is_corrupt(bag: Path) -> None:
    record = b"op=\x07\x09\x00\x00\x00conn="  # how rosbags starts a connection record header
    data = bag.read_bytes()
    assert data.count(record + b"\x00") == 2  # connection 0 in the first chunk and in the index
    data = data.replace(record + b"\x00", record + b"\x63")  # now connection 99
    with pytest.raises(CorruptRecordingError, match="connection 0 comes before that connection's record"):
        _stream_records(bag, data)


def test_ros1_record_that_does_not_belong_in_a_chunk(bag: Path) -> None:
    data = bag.read_bytes().replace(b"\x04\x00\x00\x00op=\x07", b"\x04\x00\x00\x00op=\x06")
    with pytest.raises(CorruptRecordingError, match="does not belong in a chunk"):
        _stream_records(bag, data)


def test_ros1_not_a_bag(tmp_path: Path) -> None:
    with pytest.raises(UnknownFormatError, match="not a ROS1 bag"):
        list(iter_ros1_records(_forward(b"\x89MCAP0\r\n" + bytes(100)), tmp_path / "x.bag"))


# MCAP


def _mcap_records(path: Path) -> tuple[dict[str, list[Row]], set[tuple[object, ...]]]:
    """Records per topic and the channels of ``McapStorage``."""
    storage = McapStorage(path)
    try:
        return _by_topic(storage.read(None, None)), {_fields(ch) for ch in storage.channels}
    finally:
        storage.close()


MCAP_CASES = [
    pytest.param(None, id="synth"),
    *(pytest.param(name, id=name, marks=needs_samples) for name in MCAP_SAMPLES),
]


@pytest.fixture
def synth_mcap(tmp_path: Path) -> Path:
    path = tmp_path / "synth.mcap"
    write_recording(path, "mcap", duration_s=1.0, width=64, height=48)
    return path


@pytest.mark.parametrize("reader", [ForwardOnly, ForwardInto])
@pytest.mark.parametrize("name", MCAP_CASES)
def test_mcap_stream_matches_storage(
    synth_mcap: Path, name: str | None, reader: Callable[[bytes], ForwardOnly]
) -> None:
    path = synth_mcap if name is None else SAMPLES / name
    data = path.read_bytes()
    stream = reader(data + b"trailing bytes past the closing magic")
    channels: dict[int, Channel] = {}
    got = _by_topic(iter_mcap_records(cast(IO[bytes], stream), path, channels))
    expected, expected_channels = _mcap_records(path)
    assert sum(map(len, expected.values())) > 0
    assert got == expected  # these files are written in log-time order per topic
    assert {_fields(ch) for ch in channels.values()} == expected_channels
    assert stream.consumed == len(data)  # stopped at the footer


@pytest.mark.parametrize("reader", [ForwardOnly, ForwardInto])
def test_mcap_truncated_stream_is_corrupt(synth_mcap: Path, reader: Callable[[bytes], ForwardOnly]) -> None:
    data = synth_mcap.read_bytes()
    for cut in (len(data) // 2, len(data) - 20, 20):
        with pytest.raises(CorruptRecordingError) as info:
            list(iter_mcap_records(cast(IO[bytes], reader(data[:cut])), synth_mcap, {}))
        assert info.value.path == str(synth_mcap)


def _check_views(payloads: list[Payload]) -> None:
    """Large payloads are read-only views that keep at most 4x their size alive; small ones copies."""
    views = [data for data in payloads if isinstance(data, memoryview)]
    assert views
    for view in views:
        assert view.readonly
        assert memoryview(view.obj).nbytes <= 4 * len(view)  # the buffer it keeps alive
    assert all(isinstance(data, bytes) for data in payloads if len(data) < 1000)


@pytest.mark.parametrize("compression", ["none", "lz4"])
def test_ros1_large_payloads_are_views_that_pin_little(tmp_path: Path, compression: str) -> None:
    path = _write_bag(tmp_path / "b.bag", compression, compressed_images=False, chunk_bytes=16 << 10)
    rows = _stream_records(path)
    assert _by_topic(rows) == _rosbags_records(path)
    _check_views([data for _, _, data in rows])


@pytest.mark.parametrize("compression", ["none", "lz4"])
def test_ros1_chunk_cut_short_gives_its_whole_messages(tmp_path: Path, compression: str) -> None:
    """What was written of a chunk still counts: its whole messages come before the error."""
    path = _write_bag(tmp_path / "b.bag", compression, compressed_images=False, chunk_bytes=256 << 10)
    _, first = _Layout(path).chunks[0]
    full = _stream_records(path)
    got: list[Row] = []
    with pytest.raises(CorruptRecordingError, match="truncated"):
        _collect(
            iter_ros1_records(_forward(path.read_bytes()[: first.datapos + first.datasize * 2 // 3]), path),
            got,
        )
    assert 0 < len(got) < _Layout(path).messages[0]  # some of the first chunk's, not all
    assert got == full[: len(got)]


def _write_mcap(path: Path, compression: str, payloads: list[bytes], chunk_size: int) -> Path:
    from mcap.writer import CompressionType
    from mcap.writer import Writer as McapWriter

    with path.open("wb") as f:
        writer = McapWriter(f, compression=CompressionType[compression], chunk_size=chunk_size)
        writer.start()
        channel = writer.register_channel(topic="/x", message_encoding="raw", schema_id=0)
        for i, payload in enumerate(payloads):
            writer.add_message(channel, log_time=i, data=payload, publish_time=i)
        writer.finish()  # type: ignore[no-untyped-call]
    return path


@pytest.mark.parametrize("compression", ["NONE", "ZSTD", "LZ4"])
def test_mcap_chunk_cut_short_gives_its_whole_messages(tmp_path: Path, compression: str) -> None:
    payloads = [bytes([i]) * 20_000 + i.to_bytes(4, "little") * 1000 for i in range(100)]
    path = _write_mcap(tmp_path / "c.mcap", compression, payloads, chunk_size=8 << 20)
    data = path.read_bytes()  # one chunk: every message is in the part cut short
    got: list[Payload] = []
    with pytest.raises(CorruptRecordingError, match="truncated"):
        got.extend(
            payload for _, _, payload in iter_mcap_records(_forward(data[: len(data) * 6 // 10]), path, {})
        )
    assert 30 < len(got) < 100
    assert got == payloads[: len(got)]


@pytest.mark.parametrize("compression", ["NONE", "ZSTD"])
def test_mcap_large_payloads_are_views_that_pin_little(tmp_path: Path, compression: str) -> None:
    """Payloads of at least a quarter of the buffer they were read in are read-only views of it (no
    copy); smaller ones are copied, so a held message keeps at most 4x its size alive."""
    images = [bytes([i]) * 300_000 for i in range(6)]
    small = [i.to_bytes(4, "little") * 25 for i in range(40)]
    payloads = [p for i, image in enumerate(images) for p in (image, *small[i * 6 : i * 6 + 6])]
    path = _write_mcap(tmp_path / "v.mcap", compression, payloads, chunk_size=700_000)
    storage = McapStorage(path)
    with path.open("rb") as file:
        reads = [
            iter_mcap_records(cast(IO[bytes], file), path, {}),
            iter_mcap_records(cast(IO[bytes], ForwardInto(path.read_bytes())), path, {}),
            storage.read(None, None),  # indexed
        ]
        for read in reads:
            got = [data for _, _, data in read]
            assert got == payloads
            assert sum(isinstance(data, memoryview) for data in got) == len(images)
            _check_views(got)


def test_mcap_read_buffers_are_reused_once_their_payloads_are_gone(tmp_path: Path) -> None:
    """The forward read reads each chunk into a buffer it read into before when no payload of that
    one is left; payloads still held are never overwritten."""
    images = [bytes([i]) * 300_000 for i in range(12)]
    path = _write_mcap(tmp_path / "r.mcap", "NONE", images, chunk_size=250_000)  # a chunk per image
    held: list[tuple[int, Payload]] = []
    addresses = set()
    with path.open("rb") as file:
        for i, (_, _, data) in enumerate(iter_mcap_records(cast(IO[bytes], file), path, {})):
            assert isinstance(data, memoryview) and data.readonly
            addresses.add(np.frombuffer(data, np.uint8).__array_interface__["data"][0])
            if i % 3 == 0:
                held.append((i, data))
    assert [bytes(data) for _, data in held] == [images[i] for i, _ in held]
    assert len(addresses) < len(images)


def test_mcap_record_past_its_chunk_is_corrupt(tmp_path: Path) -> None:
    """A complete chunk whose last record runs past its end is damage, read forward or indexed."""
    path = _write_mcap(tmp_path / "c.mcap", "NONE", [b"x" * 1000] * 3, chunk_size=1 << 20)
    data = bytearray(path.read_bytes())
    last = data.rindex(b"x" * 1000) - 22 - 8  # the last message's record length (before its head)
    assert data[last - 1] == 0x05
    data[last : last + 8] = (1000 + 22 + 1).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptRecordingError, match="runs past the chunk"):
        list(iter_mcap_records(cast(IO[bytes], ForwardInto(bytes(data))), path, {}))
    storage = McapStorage(path)
    with pytest.raises(CorruptRecordingError, match="runs past the chunk"):
        list(storage.read(None, None))


def test_mcap_chunk_records_past_its_record_are_corrupt(tmp_path: Path) -> None:
    path = _write_mcap(tmp_path / "c.mcap", "NONE", [b"x" * 1000] * 3, chunk_size=1 << 20)
    data = bytearray(path.read_bytes())
    at = 8 + 9 + int.from_bytes(data[9:17], "little")  # the record after the header: the chunk
    assert data[at] == 0x06
    length_at = at + 9 + 8 + 8 + 8 + 4 + 4  # after the times, size, crc and empty compression
    length = int.from_bytes(data[length_at : length_at + 8], "little")
    data[length_at : length_at + 8] = (length + 1).to_bytes(8, "little")
    with pytest.raises(CorruptRecordingError, match=r"declares \d+ bytes of records"):
        list(iter_mcap_records(cast(IO[bytes], ForwardInto(bytes(data))), path, {}))
