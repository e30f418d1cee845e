"""Roboflow pipeline: convert recordings into LeRobot datasets, locally and in parallel."""

from roboflow_pipeline._convert import ConvertSummary, DatasetFormat, Failure, OnError, convert
from roboflow_pipeline._recording import RecordingPlan, convert_recording

__all__ = [
    "ConvertSummary",
    "DatasetFormat",
    "Failure",
    "OnError",
    "RecordingPlan",
    "convert",
    "convert_recording",
]
