from typing import Any

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from roboflow_dataset._image_wire import read_raw_image

STORE = get_typestore(Stores.ROS2_HUMBLE)
ROS1_STORE = get_typestore(Stores.ROS1_NOETIC)


def _image(frame_id: str, encoding: str, wire: str = "cdr") -> Any:
    store = STORE if wire == "cdr" else ROS1_STORE
    types = store.types
    pixels = np.arange(5 * 7 * 3, dtype=np.uint8)
    header = {"stamp": types["builtin_interfaces/msg/Time"](sec=3, nanosec=7), "frame_id": frame_id}
    if wire == "ros1":
        header["seq"] = 11
    return types["sensor_msgs/msg/Image"](
        header=types["std_msgs/msg/Header"](**header),
        height=5,
        width=7,
        encoding=encoding,
        is_bigendian=0,
        step=21,
        data=pixels,
    )


@pytest.mark.parametrize("frame_id", ["", "c", "cam", "camera_optical_frame"])
@pytest.mark.parametrize("wire", ["cdr", "ros1"])
def test_fields_equal_a_full_decode_for_every_padding(frame_id: str, wire: str) -> None:
    msg = _image(frame_id, "rgb8" if len(frame_id) % 2 else "bgr8", wire)
    if wire == "cdr":
        data = STORE.serialize_cdr(msg, "sensor_msgs/msg/Image")
    else:
        data = ROS1_STORE.serialize_ros1(msg, "sensor_msgs/msg/Image")
    raw = read_raw_image(bytes(data), wire)
    assert raw is not None
    assert (raw.height, raw.width, raw.encoding, raw.is_bigendian, raw.step) == (
        5,
        7,
        msg.encoding,
        False,
        21,
    )
    np.testing.assert_array_equal(np.frombuffer(raw.data, dtype=np.uint8), msg.data)


def test_truncated_message_and_unknown_wire() -> None:
    data = bytes(STORE.serialize_cdr(_image("cam", "rgb8"), "sensor_msgs/msg/Image"))
    with pytest.raises(ValueError, match="runs past the end"):
        read_raw_image(data[:-10], "cdr")
    with pytest.raises(ValueError, match="ends early"):
        read_raw_image(data[:20], "cdr")
    assert read_raw_image(data, "json") is None
    big_endian = b"\x00\x00" + data[2:]
    assert read_raw_image(big_endian, "cdr") is None
