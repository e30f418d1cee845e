"""Roboflow dataset: recording sources, alignment and LeRobot writers."""

from roboflow_dataset.inspect import inspect_source
from roboflow_dataset.sources import Message, Source, SourceFormat, TopicInfo, open_source
from roboflow_dataset.synth import RecordingInfo, make_image, read_marker, write_recording

__all__ = [
    "Message",
    "RecordingInfo",
    "Source",
    "SourceFormat",
    "TopicInfo",
    "inspect_source",
    "make_image",
    "open_source",
    "read_marker",
    "write_recording",
]
