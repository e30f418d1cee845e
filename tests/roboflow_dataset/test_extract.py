from types import SimpleNamespace as NS

import numpy as np
import pytest

from roboflow_core import DecodeError
from roboflow_dataset.extract import ImageExtractor, VectorExtractor, default_fields


def _joint_state(names: list[str], pos: list[float]) -> NS:
    return NS(name=names, position=np.array(pos), velocity=np.array([]), effort=np.array([]))


def test_joint_state_defaults_to_position_named_by_joint() -> None:
    ex = VectorExtractor("/js", "sensor_msgs/msg/JointState", None, None)
    vec = ex(_joint_state(["a", "b"], [0.5, 1.5]))
    assert vec.dtype == np.float32 and vec.tolist() == [0.5, 1.5]
    assert ex.names == ("a", "b")


def test_several_fields_are_concatenated_with_prefixed_names() -> None:
    ex = VectorExtractor("/js", "sensor_msgs/JointState", ["position", "velocity"], None)
    msg = NS(name=["a"], position=np.array([1.0]), velocity=np.array([2.0]))
    assert ex(msg).tolist() == [1.0, 2.0]
    assert ex.names == ("position.a", "velocity.a")


def test_pose_defaults_and_nested_paths_with_indices() -> None:
    assert default_fields("geometry_msgs/msg/PoseStamped")[0] == "pose.position.x"
    pose = NS(pose=NS(position=NS(x=1, y=2, z=3), orientation=NS(x=0, y=0, z=0, w=1)))
    ex = VectorExtractor("/p", "geometry_msgs/msg/PoseStamped", None, None)
    assert ex(pose).tolist() == [1, 2, 3, 0, 0, 0, 1]
    arr = VectorExtractor("/a", "custom/Thing", ["values[1]", "inner.k"], ["v1", "k"])
    assert arr({"values": [5, 6, 7], "inner": {"k": 9}}).tolist() == [6, 9]
    assert default_fields("std_msgs/msg/Float32MultiArray") == ("data",)


def test_errors_name_topic_and_field() -> None:
    with pytest.raises(DecodeError, match="set `fields`") as info:
        VectorExtractor("/x", "custom/Unknown", None, None)
    assert info.value.topic == "/x"
    ex = VectorExtractor("/x", "custom/T", ["missing.path"], None)
    with pytest.raises(DecodeError, match=r"missing\.path"):
        ex(NS(other=1))
    js = VectorExtractor("/js", "sensor_msgs/JointState", None, None)
    js(_joint_state(["a", "b"], [0, 1]))
    with pytest.raises(DecodeError, match="3 values but 2 names"):
        js(_joint_state(["a", "b", "c"], [0, 1, 2]))
    named = VectorExtractor("/js", "sensor_msgs/JointState", None, ["only_one"])
    with pytest.raises(DecodeError, match="2 values but 1 names"):
        named(_joint_state(["a", "b"], [0, 1]))


def test_image_extractor_decodes_raw_and_rejects_short_data() -> None:
    rgb = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    msg = NS(height=4, width=6, encoding="rgb8", step=18, is_bigendian=0, data=rgb.reshape(-1))
    ex = ImageExtractor("/cam", "sensor_msgs/msg/Image")
    np.testing.assert_array_equal(ex(msg), rgb)
    short = NS(height=4, width=6, encoding="rgb8", step=18, is_bigendian=0, data=rgb.reshape(-1)[:10])
    with pytest.raises(DecodeError) as info:
        ex(short)
    assert info.value.topic == "/cam"
    with pytest.raises(DecodeError, match="needs sensor_msgs/Image"):
        ImageExtractor("/cam", "std_msgs/msg/String")
