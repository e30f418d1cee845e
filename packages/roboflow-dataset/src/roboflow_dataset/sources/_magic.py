"""The first bytes of each recording format: detection needs no format's reader imported."""

__all__ = ["MCAP_MAGIC", "ROS1_MAGIC", "RRD_MAGICS", "SQLITE_MAGIC"]

MCAP_MAGIC = b"\x89MCAP0\r\n"
ROS1_MAGIC = b"#ROSBAG V2.0\n"
SQLITE_MAGIC = b"SQLite format 3\x00"
RRD_MAGICS = (b"RRF0", b"RRF1", b"RRF2")
