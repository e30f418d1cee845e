"""Roboflow pipeline: convert recordings into LeRobot datasets, locally and in parallel."""

from roboflow_dataset.lerobot import ClosedSegment
from roboflow_pipeline._convert import ConvertSummary, DatasetFormat, Failure, OnError, convert
from roboflow_pipeline._lock import DatasetLock, LockInfo
from roboflow_pipeline._publish import Published, dataset_episodes, open_output, publish_episodes
from roboflow_pipeline._recording import RecordingPlan, convert_recording
from roboflow_pipeline._skills import convert_skills, load_staged

__all__ = [
    "ClosedSegment",
    "ConvertSummary",
    "DatasetFormat",
    "DatasetLock",
    "Failure",
    "LockInfo",
    "OnError",
    "Published",
    "RecordingPlan",
    "convert",
    "convert_recording",
    "convert_skills",
    "dataset_episodes",
    "load_staged",
    "open_output",
    "publish_episodes",
]
