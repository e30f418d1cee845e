"""Writing LeRobot datasets: features, staged episodes, merging (v3.0 and v2.1), reading back."""

from roboflow_dataset.lerobot.features import DEFAULT_FEATURES, FeatureSpec, camera_feature
from roboflow_dataset.lerobot.layout import DatasetFormat
from roboflow_dataset.lerobot.merge import DEFAULT_CHUNKS_SIZE, MergeResult, merge_into_dataset
from roboflow_dataset.lerobot.reader import DatasetContents, read_dataset
from roboflow_dataset.lerobot.staging import (
    ClosedSegment,
    EpisodeStager,
    StagedEpisode,
    StagedVideo,
    closed_segments,
)

__all__ = [
    "DEFAULT_CHUNKS_SIZE",
    "DEFAULT_FEATURES",
    "ClosedSegment",
    "DatasetContents",
    "DatasetFormat",
    "EpisodeStager",
    "FeatureSpec",
    "MergeResult",
    "StagedEpisode",
    "StagedVideo",
    "camera_feature",
    "closed_segments",
    "merge_into_dataset",
    "read_dataset",
]
