"""Roboflow pipeline: convert recordings into LeRobot datasets, locally and in parallel."""

from roboflow_dataset.convert import RecordingPlan, convert_recording, convert_skills, load_staged
from roboflow_dataset.lerobot import ClosedSegment
from roboflow_pipeline._convert import ConvertSummary, DatasetFormat, Failure, OnError, convert
from roboflow_pipeline._lock import DatasetLock, LockInfo
from roboflow_pipeline.dataset import Dataset, DatasetSummary, Published

__all__ = [
    "ClosedSegment",
    "ConvertSummary",
    "Dataset",
    "DatasetFormat",
    "DatasetLock",
    "DatasetSummary",
    "Failure",
    "LockInfo",
    "OnError",
    "Published",
    "RecordingPlan",
    "convert",
    "convert_recording",
    "convert_skills",
    "load_staged",
]
