"""Recording sources: ROS1 bags, rosbag2 directories (sqlite3 or MCAP storage), bare MCAP files
and Rerun ``.rrd`` recordings (with the ``rerun`` extra).

``open_source(path)`` detects the format; a :class:`Source` streams :class:`Message` objects in
log-time order, whose payloads decode lazily.
"""

from roboflow_dataset.sources._model import Message, TopicInfo
from roboflow_dataset.sources._open import open_source
from roboflow_dataset.sources._rrd import RrdSource
from roboflow_dataset.sources._source import Source, SourceFormat
from roboflow_dataset.sources._streamed import SalvagedSource, StreamedRecording, open_streamed

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
