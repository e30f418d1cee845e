"""Roboflow dataset: recording sources, alignment and LeRobot writers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roboflow_dataset.inspect import inspect_source
from roboflow_dataset.sources import Message, Source, SourceFormat, TopicInfo, open_source

if TYPE_CHECKING:
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

_SYNTH = frozenset({"RecordingInfo", "make_image", "read_marker", "write_recording"})


def __getattr__(name: str) -> Any:
    """The synthetic-recording helpers, imported when first used (Pillow and the writers cost a
    conversion's every process ~40 ms otherwise)."""
    if name in _SYNTH:
        from roboflow_dataset import synth

        return getattr(synth, name)
    raise AttributeError(f"module 'roboflow_dataset' has no attribute {name!r}")
