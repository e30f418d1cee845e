"""Video files shaped for the tests: what the writers must recognise and refuse."""

from __future__ import annotations

from pathlib import Path

import av


def write_index_last(source: Path, dest: Path) -> None:
    """``source``'s packets remuxed into ``dest`` with the mp4 index after the media (no faststart)."""
    with av.open(str(source)) as src, av.open(str(dest), "w") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0], opaque=True)
        for packet in src.demux(video=0):
            if packet.size:
                packet.stream = stream
                dst.mux(packet)
