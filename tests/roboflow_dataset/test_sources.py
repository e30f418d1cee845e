"""Sources: real third-party samples, every encoding in bare MCAP, malformed inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mcap.writer import Writer as McapWriter
from mcap_protobuf.writer import Writer as ProtobufWriter
from rosbags.typesys import Stores, get_typestore

from roboflow_core.errors import CorruptRecordingError, DecodeError, SourceError, UnknownFormatError
from roboflow_dataset.sources import Source, open_source

SAMPLES = Path(__file__).parents[2].parent / "shared" / "samples"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"sample recordings not found at {SAMPLES}")

_TURTLES = {
    "/rosout": 10,
    "/tf": 2688,
    "/tf_static": 1,
    "/turtle1/cmd_vel": 357,
    "/turtle1/color_sensor": 1351,
    "/turtle1/pose": 1344,
    "/turtle2/cmd_vel": 208,
    "/turtle2/color_sensor": 1344,
    "/turtle2/pose": 1344,
}
_TALKER = {"/topic": 10, "/rosout": 10, "/parameter_events": 0}
_TF = {"/tf": 517, "/tf_static": 1}

# path under samples/ -> (format, {topic: count}); rosbags-rs bags are checked separately.
EXPECTED: dict[str, tuple[str, dict[str, int]]] = {
    "evo/ROS_example.bag": ("ros1", {"ORB-SLAM": 8362, "S-PTAM": 5439, "groundtruth": 12765}),
    "evo/tf_example.bag": ("ros1", _TF),
    "evo/tf_example": ("ros2", _TF),
    "evo/nav2_turtlebot.mcap": ("mcap", {"/amcl_pose": 135, "/odom": 2639, "/tf": 5422, "/tf_static": 1}),
    "rosbag.js/example.bag": ("ros1", _TURTLES),
    "rosbag.js/example-lz4.bag": ("ros1", _TURTLES),
    "rosbag.js/example-bz2.bag": ("ros1", _TURTLES),
    "rosbag.js/example-unsorted-chunks.bag": ("ros1", {"foo": 3}),
    "rosbag.js/no-messages.bag": ("ros1", {}),
    "rosbag2/mcap/talker": ("ros2", _TALKER),
    "rosbag2/sqlite3/talker": ("ros2", _TALKER),
    "rosbag2/mcap/multiple_files": ("ros2", {"/chatter": 3177}),
    "rosbag2/mcap/cdr_test": ("ros2", {"/array_topic": 4, "/test_topic": 3}),
    "ros2bag_tools/images.bag": ("ros2", {"/image": 3}),
    "embag/test.bag": ("ros1", {"/base_pose_ground_truth": 5, "/base_scan": 5, "/luminar_pointcloud": 5}),
    "embag/array_test.bag": ("ros1", {"/array_test": 20}),
    "embag/test_2.bag": ("ros1", {"chatter": 2}),
}
ROSBAGS_RS = ["rosbags-rs/test_bag_mcap", "rosbags-rs/test_bag_sqlite3"]
ALL_SAMPLES = [*EXPECTED, *ROSBAGS_RS]


def _decode_all(source: Source) -> int:
    """Decode every message, check order and the fast header stamp; return the count."""
    count, previous = 0, -1
    for message in source.messages():
        assert message.log_time_ns >= previous
        previous = message.log_time_ns
        value = message.decode()
        stamp = message.header_stamp_ns
        if stamp is not None:
            assert stamp == value.header.stamp.sec * 10**9 + value.header.stamp.nanosec
        count += 1
    return count


@needs_samples
@pytest.mark.parametrize("name", list(EXPECTED))
def test_sample_topics_and_counts(name: str) -> None:
    fmt, counts = EXPECTED[name]
    with open_source(SAMPLES / name) as source:
        assert source.format == fmt
        assert {t.topic: t.count for t in source.topics()} == counts
        read: dict[str, int] = dict.fromkeys(counts, 0)
        for message in source.messages():
            read[message.topic] += 1
        assert read == counts


@needs_samples
@pytest.mark.parametrize("name", ROSBAGS_RS)
def test_rosbags_rs_samples(name: str) -> None:
    with open_source(SAMPLES / name) as source:
        topics = source.topics()
        assert len(topics) == 94
        assert all(t.count == 2 for t in topics)
        joint = next(m for m in source.messages(["/test/sensor_msgs/joint_state"]))
        assert list(joint.decode().position) == [0.1, 0.2, 0.3]
        image = next(m for m in source.messages(["/test/sensor_msgs/image"])).decode()
        assert (image.width, image.height, len(image.data)) == (640, 480, 30)  # malformed, but deserializes


@needs_samples
@pytest.mark.parametrize("name", ALL_SAMPLES)
def test_sample_decodes_every_message(name: str) -> None:
    with open_source(SAMPLES / name) as source:
        assert _decode_all(source) == sum(t.count for t in source.topics())


@needs_samples
def test_split_bag_merges_in_log_time_order() -> None:
    with open_source(SAMPLES / "rosbag2/mcap/multiple_files") as source:
        times = [m.log_time_ns for m in source.messages()]
    assert len(times) == 3177
    assert times == sorted(times)


@needs_samples
def test_types_only_in_the_file_decode() -> None:
    with open_source(SAMPLES / "rosbag2/mcap/cdr_test") as source:
        arrays = next(m for m in source.messages(["/array_topic"]))
        assert arrays.msgtype == "test_msgs/msg/Arrays"
        assert len(arrays.decode().bool_values) == 3


@needs_samples
def test_filters_and_seek() -> None:
    with open_source(SAMPLES / "evo/ROS_example.bag") as source:
        middle = (source.start_ns or 0) + ((source.end_ns or 0) - (source.start_ns or 0)) // 2
        everything = [(m.topic, m.log_time_ns) for m in source.messages()]
        after = [(m.topic, m.log_time_ns) for m in source.messages(["S-PTAM"], start_ns=middle)]
    assert after == [(t, ts) for t, ts in everything if t == "S-PTAM" and ts >= middle]
    assert after


@needs_samples
@pytest.mark.parametrize("name", ["evo/nav2_turtlebot.mcap", "evo/tf_example", "evo/tf_example.bag"])
def test_unknown_topic_matches_nothing(name: str) -> None:
    with open_source(SAMPLES / name) as source:
        assert list(source.messages(["/nope"])) == []


@needs_samples
def test_file_url_and_metadata_path() -> None:
    with open_source((SAMPLES / "evo/nav2_turtlebot.mcap").as_uri()) as source:
        assert source.format == "mcap"
    with open_source(SAMPLES / "evo/tf_example/metadata.yaml") as source:
        assert source.path == SAMPLES / "evo/tf_example"


@needs_samples
@pytest.mark.parametrize(
    ("name", "keep"),
    [
        ("evo/nav2_turtlebot.mcap", 0.6),
        ("rosbag.js/example-lz4.bag", 0.6),
        ("evo/ROS_example.bag", 0.3),
        ("evo/tf_example/tf_example.db3", 0.5),
    ],
)
def test_truncated_copy_is_corrupt(tmp_path: Path, name: str, keep: float) -> None:
    data = (SAMPLES / name).read_bytes()
    target = tmp_path / Path(name).name
    target.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CorruptRecordingError, match=str(target)), open_source(target) as source:
        _decode_all(source)


@needs_samples
def test_ros2_dir_with_missing_storage_file(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    bag.mkdir()
    shutil.copy(SAMPLES / "evo/tf_example/metadata.yaml", bag)
    with pytest.raises(CorruptRecordingError, match="missing"):
        open_source(bag)


@pytest.mark.parametrize("content", [b"hello, this is text\n", b"", b"\x89PNG\r\n\x1a\n0000"])
def test_unknown_format(tmp_path: Path, content: bytes) -> None:
    target = tmp_path / "notes.bag"
    target.write_bytes(content)
    with pytest.raises(UnknownFormatError, match=str(target)):
        open_source(target)


def test_empty_directory_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(UnknownFormatError):
        open_source(tmp_path)
    with pytest.raises(SourceError, match="no such file"):
        open_source(tmp_path / "absent.mcap")
    with pytest.raises(SourceError, match="no such object or prefix"):
        open_source("memory://test-sources-missing/key.mcap")


def _write_mcap(
    path: Path, channels: list[tuple[str, str, str, str, bytes, list[bytes]]], **options: object
) -> None:
    """channels: (topic, message encoding, schema name, schema encoding, schema, payloads)."""
    with path.open("wb") as stream:
        writer = McapWriter(stream, **options)  # type: ignore[arg-type]
        writer.start(profile="", library="test")
        for topic, encoding, name, schema_encoding, schema, payloads in channels:
            schema_id = writer.register_schema(name=name, encoding=schema_encoding, data=schema)
            channel_id = writer.register_channel(topic=topic, message_encoding=encoding, schema_id=schema_id)
            for i, payload in enumerate(payloads):
                writer.add_message(channel_id, log_time=1000 + i, data=payload, publish_time=1000 + i)
        writer.finish()  # type: ignore[no-untyped-call]


def test_mcap_json_and_ros1msg(tmp_path: Path) -> None:
    ros1 = get_typestore(Stores.ROS1_NOETIC)
    types = ros1.types
    stamp = types["builtin_interfaces/msg/Time"](sec=7, nanosec=5)
    pose = types["geometry_msgs/msg/PoseStamped"](
        header=types["std_msgs/msg/Header"](seq=1, stamp=stamp, frame_id="map"),
        pose=types["geometry_msgs/msg/Pose"](
            position=types["geometry_msgs/msg/Point"](x=1.0, y=2.0, z=3.0),
            orientation=types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
        ),
    )
    definition = ros1.generate_msgdef("geometry_msgs/msg/PoseStamped", ros_version=1)[0].encode()
    payload = bytes(ros1.serialize_ros1(pose, "geometry_msgs/msg/PoseStamped"))
    path = tmp_path / "mixed.mcap"
    _write_mcap(
        path,
        [
            ("/pose", "ros1", "geometry_msgs/PoseStamped", "ros1msg", definition, [payload]),
            ("/json", "json", "Thing", "jsonschema", b"{}", [json.dumps({"a": [1, 2]}).encode()]),
        ],
    )
    with open_source(path) as source:
        messages = {m.topic: m for m in source.messages()}
    assert messages["/pose"].msgtype == "geometry_msgs/msg/PoseStamped"
    assert messages["/pose"].header_stamp_ns == 7 * 10**9 + 5
    assert messages["/pose"].decode().pose.position.y == 2.0
    assert messages["/json"].decode() == {"a": [1, 2]}
    assert messages["/json"].header_stamp_ns is None


def test_mcap_protobuf(tmp_path: Path) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    path = tmp_path / "proto.mcap"
    with path.open("wb") as stream:
        writer = ProtobufWriter(stream)
        for i in range(3):
            writer.write_message(
                "/stamp", Timestamp(seconds=i, nanos=5), log_time=100 + i, publish_time=100 + i
            )
        writer.finish()  # type: ignore[no-untyped-call]
    with open_source(path) as source:
        assert [(t.topic, t.count, t.encoding) for t in source.topics()] == [("/stamp", 3, "protobuf")]
        assert [m.decode().seconds for m in source.messages()] == [0, 1, 2]


_NO_INDEX: dict[str, object] = {"use_chunking": False, "use_statistics": False}
_NO_SUMMARY: dict[str, object] = {
    **_NO_INDEX,
    "repeat_channels": False,
    "repeat_schemas": False,
    "use_summary_offsets": False,
}


@pytest.mark.parametrize("layout", ["indexed", "no index", "no summary"])
def test_mcap_without_index_or_summary(tmp_path: Path, layout: str) -> None:
    from mcap.writer import IndexType

    store = get_typestore(Stores.ROS2_HUMBLE)
    definition = store.generate_msgdef("std_msgs/msg/String", ros_version=2)[0].encode()
    string = store.types["std_msgs/msg/String"]
    payloads = [bytes(store.serialize_cdr(string(data=f"m{i}"), "std_msgs/msg/String")) for i in range(5)]
    layouts: dict[str, dict[str, object]] = {"indexed": {}, "no index": _NO_INDEX, "no summary": _NO_SUMMARY}
    options = layouts[layout]
    if options:
        options = {**options, "index_types": IndexType.NONE}
    path = tmp_path / "plain.mcap"
    _write_mcap(path, [("/s", "cdr", "std_msgs/msg/String", "ros2msg", definition, payloads)], **options)
    with open_source(path) as source:
        assert [(t.topic, t.count, t.first_log_time_ns, t.last_log_time_ns) for t in source.topics()] == [
            ("/s", 5, 1000, 1004)
        ]
        assert [m.decode().data for m in source.messages(start_ns=1002)] == ["m2", "m3", "m4"]


def test_undecodable_payload_names_file_topic_and_time(tmp_path: Path) -> None:
    definition = b"string data\n"
    path = tmp_path / "bad.mcap"
    _write_mcap(
        path, [("/chatter", "cdr", "std_msgs/msg/String", "ros2msg", definition, [b"\x00\x01\x00\x00\xff"])]
    )
    with open_source(path) as source:
        message = next(iter(source.messages()))
        with pytest.raises(DecodeError, match=r"bad\.mcap.*topic=/chatter.*log_time_ns=1000"):
            message.decode()


def test_unsupported_encoding_is_a_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "odd.mcap"
    _write_mcap(path, [("/x", "flatbuffer", "X", "flatbuffer", b"", [b"1234"])])
    with open_source(path) as source:
        message = next(iter(source.messages()))
        with pytest.raises(DecodeError, match="flatbuffer"):
            message.decode()
