"""Recording sources: ROS1 bags, rosbag2 directories (sqlite3 or MCAP storage), bare MCAP files
and Rerun ``.rrd`` recordings (with the ``rerun`` extra).

``open_source(path)`` detects the format; a :class:`Source` streams :class:`Message` objects in
log-time order, whose payloads decode lazily.
"""

from typing import TYPE_CHECKING, Any

from roboflow_dataset.sources._model import Message, TopicInfo
from roboflow_dataset.sources._open import open_source
from roboflow_dataset.sources._source import Source, SourceFormat
from roboflow_dataset.sources._streamed import SalvagedSource, StreamedRecording, open_streamed

if TYPE_CHECKING:
    from roboflow_dataset.sources._rrd import RrdSource

__all__ = [
    "Message",
    "RrdSource",
    "SalvagedSource",
    "Source",
    "SourceFormat",
    "StreamedRecording",
    "TopicInfo",
    "open_source",
    "open_streamed",
]


def __getattr__(name: str) -> Any:
    """:class:`RrdSource`, imported when first used (its module imports pyarrow, ~40 ms a process)."""
    if name == "RrdSource":
        from roboflow_dataset.sources._rrd import RrdSource

        return RrdSource
    raise AttributeError(f"module 'roboflow_dataset.sources' has no attribute {name!r}")
