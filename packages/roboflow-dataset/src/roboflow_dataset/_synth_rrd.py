"""The ``rrd`` format of :func:`roboflow_dataset.synth.write_recording`: the same recording, logged
with rerun-sdk (the optional extra ``roboflow-dataset[rerun]``); depth topics are ``DepthImage``
entities (millimetres, or float metres for ``32FC1``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from roboflow_dataset._synth_content import (
    JOINT_NAMES,
    action_at,
    joint_state_at,
    jpeg_bytes,
    make_depth,
    make_image,
)

if TYPE_CHECKING:
    from roboflow_dataset.synth import RecordingInfo, SynthMessage

__all__ = ["CAPTURE_TIMELINE", "write_rrd"]

CAPTURE_TIMELINE = "capture"


def write_rrd(info: RecordingInfo, path: Path, events: Iterable[tuple[int, str, SynthMessage]]) -> None:
    """Log ``events`` (log time, topic, message; in log-time order) of ``info`` to a new ``.rrd`` file.

    Raises:
        ImportError: rerun-sdk is not installed.
        FileExistsError: ``path`` exists.
    """
    import rerun as rr

    if path.exists():
        raise FileExistsError(f"{path} exists")
    cameras = {info.topic_of(c): c for c in info.cameras}
    depths = {t: c for c in info.depth_cameras for t in info.messages if t.startswith(f"/{c}/depth/")}
    joints = next(t for t, msgtype in info.msgtypes.items() if msgtype == "sensor_msgs/msg/JointState")
    rec = rr.RecordingStream("roboflow-synth", recording_id=path.stem)
    rec.set_log_time_enabled(False)  # log_time below is the recording's own, not the wall clock
    rec.save(path)
    try:
        rec.log(joints, rr.SeriesLines(names=list(JOINT_NAMES)), static=True)
        for log_time, topic, msg in events:
            rec.set_time("log_time", timestamp=np.datetime64(log_time, "ns"))
            capture = msg.header_stamp_ns if msg.header_stamp_ns is not None else log_time
            rec.set_time(CAPTURE_TIMELINE, timestamp=np.datetime64(capture, "ns"))
            if topic in cameras:
                camera = cameras[topic]
                last = info.messages[topic][-1].index
                drift = msg.index / max(last, 1) if info.drift else 0.0
                pixels = make_image(msg.index, camera, info.width, info.height, drift)
                if camera in info.compressed:
                    rec.log(topic, rr.EncodedImage(contents=jpeg_bytes(pixels), media_type="image/jpeg"))
                else:
                    rec.log(topic, rr.Image(pixels, color_model="RGB"))
            elif topic in depths:
                millimetres = make_depth(msg.index, depths[topic], info.width, info.height)
                if info.depth_encoding == "32FC1":
                    metres = np.where(millimetres == 0, np.float32(np.nan), millimetres / np.float32(1000))
                    rec.log(topic, rr.DepthImage(metres.astype(np.float32), meter=1.0))
                else:  # 16UC1, and compressedDepth's 16-bit PNG: the same millimetres
                    rec.log(topic, rr.DepthImage(millimetres, meter=1000.0))
            elif topic == joints:
                rec.log(topic, rr.Scalars(joint_state_at(msg.index / info.joint_hz)[0]))
            else:
                rec.log(topic, rr.Scalars(action_at(msg.index / info.action_hz).astype(np.float64)))
    finally:
        rec.disconnect()  # flushes and writes the footer
