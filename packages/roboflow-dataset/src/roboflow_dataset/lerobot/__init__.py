"""Writing LeRobot datasets: features, staged episodes, merging (v3.0 and v2.1), reading back."""

from typing import TYPE_CHECKING, Any

from roboflow_dataset.lerobot.features import DEFAULT_FEATURES, FeatureSpec, camera_feature
from roboflow_dataset.lerobot.reader import DatasetContents, read_dataset
from roboflow_dataset.lerobot.staging import (
    ClosedSegment,
    EpisodeStager,
    StagedEpisode,
    StagedVideo,
    closed_segments,
)

if TYPE_CHECKING:
    from roboflow_dataset.lerobot.layout import DatasetFormat
    from roboflow_dataset.lerobot.merge import DEFAULT_CHUNKS_SIZE, MergeResult, merge_into_dataset

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

_MERGE = frozenset({"DEFAULT_CHUNKS_SIZE", "MergeResult", "merge_into_dataset"})


def __getattr__(name: str) -> Any:
    """The merge and the layouts, imported when first used: they import pyarrow (~40 ms a
    process), which a conversion needs only once it writes rows."""
    if name in _MERGE:
        from roboflow_dataset.lerobot import merge

        return getattr(merge, name)
    if name == "DatasetFormat":
        from roboflow_dataset.lerobot.layout import DatasetFormat

        return DatasetFormat
    raise AttributeError(f"module 'roboflow_dataset.lerobot' has no attribute {name!r}")
