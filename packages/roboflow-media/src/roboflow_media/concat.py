"""Join per-episode videos into one file by stream copy (no re-encoding); whether an mp4 has its
index first, as the joined files (and the PyAV encoder's) have it."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import av

from roboflow_core.errors import MediaError

__all__ = ["concat_videos", "is_faststart"]

_TOP_BOXES = 16
"""Top-level boxes read before giving up on finding ``moov`` (an mp4 has a handful: ftyp, moov,
free, mdat...)."""


def concat_videos(inputs: Sequence[Path], output: Path) -> None:
    """Remux ``inputs`` one after another into ``output`` (mp4 gets ``movflags=faststart``).

    Each input's packets are shifted by the running end time of the inputs before it, so with
    constant-rate inputs starting at pts 0, input ``j`` starts at exactly
    ``(frames before j) / fps``. Inputs must share codec, size, pixel format and time base.

    Args:
        inputs: Videos to join, in order (at least one).
        output: The joined video; an existing file is replaced.

    Raises:
        MediaError: No inputs, inputs that do not match, or a read/write failure (naming the file).
    """
    if not inputs:
        raise MediaError("nothing to concatenate", path=str(output))
    current = output
    try:
        with av.open(str(output), "w", options={"movflags": "faststart"}) as dst:
            offset = 0
            out_stream = None
            for current in inputs:
                with av.open(str(current)) as src:
                    in_stream = src.streams.video[0]
                    if out_stream is None:
                        out_stream = dst.add_stream_from_template(in_stream, opaque=True)
                        out_stream.time_base = in_stream.time_base
                        want = _signature(in_stream)
                    if (got := _signature(in_stream)) != want:
                        raise MediaError(
                            f"video does not match the first input: {got} vs {want}", path=str(current)
                        )
                    end = offset
                    for packet in src.demux(in_stream):
                        if packet.pts is None or packet.dts is None:
                            continue  # the demuxer's end-of-stream marker
                        end = max(end, offset + packet.pts + (packet.duration or 0))
                        packet.pts += offset
                        packet.dts += offset
                        packet.stream = out_stream
                        dst.mux(packet)
                    offset = end
    except (av.FFmpegError, OSError, IndexError) as err:
        output.unlink(missing_ok=True)
        raise MediaError(f"cannot concatenate into {output}: {err}", path=str(current)) from err
    except MediaError:
        output.unlink(missing_ok=True)
        raise


def _signature(stream: av.video.stream.VideoStream) -> tuple[object, ...]:
    codec = stream.codec_context
    return (
        codec.name,
        codec.width,
        codec.height,
        codec.format.name if codec.format else None,
        stream.time_base,
    )


def is_faststart(path: str | Path) -> bool:
    """Whether the mp4 at ``path`` has its index (``moov`` box) before its media data (``mdat``),
    as ``movflags=faststart`` writes it, and whole (the ``moov`` box ends inside the file).

    Only the top-level box headers are read. False for a file that is missing, unreadable, not an
    mp4, or has ``mdat`` first.
    """
    try:
        with open(path, "rb") as file:
            end = file.seek(0, 2)
            offset = 0
            for _ in range(_TOP_BOXES):
                file.seek(offset)
                header = file.read(16)
                if len(header) < 8:
                    return False
                size: int = struct.unpack(">I", header[:4])[0]
                kind = header[4:8]
                if size == 1 and len(header) == 16:  # a 64-bit size follows the type
                    size = struct.unpack(">Q", header[8:])[0]
                elif size == 0:  # the box runs to the end of the file
                    size = end - offset
                if kind == b"moov":
                    return size >= 8 and offset + size <= end
                if kind == b"mdat" or size < 8:
                    return False
                offset += size
    except OSError:
        return False
    return False
