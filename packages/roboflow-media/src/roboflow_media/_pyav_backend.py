"""In-process encoding with PyAV (the default backend); PyAV releases the GIL while encoding."""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.video.reformatter import VideoReformatter
from numpy.typing import NDArray

from roboflow_media._base import VideoEncoder
from roboflow_media._settings import EncodeSettings
from roboflow_media._threads import yielding_threads

__all__ = ["PyAVEncoder", "quiet_svt_av1"]


def quiet_svt_av1() -> None:
    """Keep SVT-AV1 from printing a banner to stderr for every encoder: ``SVT_LOG=1`` (errors only).

    The library inside PyAV reads only the process environment, when an encoder opens, so this is
    the one place Roboflow sets a variable of its own process: when an SVT-AV1 encoder opens (not
    at import), never over a value already set. The ffmpeg backend passes it to its child only.
    """
    os.environ.setdefault("SVT_LOG", "1")


class PyAVEncoder(VideoEncoder):
    """Encodes with the FFmpeg libraries bundled in PyAV's wheels."""

    backend = "pyav"

    def __init__(self, path: Path, settings: EncodeSettings, *, width: int, height: int, fps: int) -> None:
        super().__init__(path, settings, width=width, height=height, fps=fps)
        self._time_base = Fraction(1, fps)
        self._reformatter = VideoReformatter()  # kept: set up once, not for every frame
        if "svt" in settings.codec:
            quiet_svt_av1()
        # the index first (faststart), as every mp4 of a dataset has it: a staged video can
        # become the dataset's file as it is (see roboflow_media.concat.is_faststart)
        self._container = av.open(str(path), "w", options={"movflags": "faststart"})
        try:
            stream = self._container.add_stream(settings.codec, rate=fps, options=settings.options)
            assert isinstance(stream, av.VideoStream)
            self._stream = stream
            self._stream.width = width
            self._stream.height = height
            self._stream.pix_fmt = settings.pix_fmt
            self._stream.time_base = self._time_base
            if settings.canonical == "av1":
                # square pixels declared (a ``pasp`` box), as a remux of the file declares them
                # (AV1 readers derive them): placed as it is or remuxed, the file is the same;
                # AV1 has no aspect ratio in its bitstream, so the packets do not change
                self._stream.codec_context.sample_aspect_ratio = Fraction(1, 1)
        except BaseException:
            self._container.close()
            raise

    def _write(self, frame: NDArray[Any]) -> None:
        video_frame = self._frame(frame)
        video_frame.pts = self.frames
        video_frame.time_base = self._time_base
        if self.frames == 0:  # the first frame opens the codec, which starts its threads
            with yielding_threads():
                packets = self._stream.encode(video_frame)
        else:
            packets = self._stream.encode(video_frame)
        self._container.mux(packets)

    def _frame(self, frame: NDArray[Any]) -> av.VideoFrame:
        """The frame in the encoder's pixel format, converted here by one kept swscale context on
        one thread: PyAV's own conversion inside ``encode`` lets swscale start threads of its own
        (0.86 vs 1.04 ms of CPU a 640x480 RGB frame; bit-identical output either way). RGB
        rows that are already contiguous are wrapped, not copied, when a conversion follows (the
        encoder may keep its input frame after ``encode`` returns; the array may not live on)."""
        settings = self.settings
        converts = settings.pix_fmt != settings.input_format
        if converts and settings.channels == 3 and frame.strides[1:] == (3, 1):
            video_frame = av.VideoFrame.from_numpy_buffer(frame, format=settings.input_format)
        else:
            pixels = frame if settings.channels == 3 else frame[..., 0]
            video_frame = av.VideoFrame.from_ndarray(pixels, format=settings.input_format)
        if not converts:
            return video_frame
        return self._reformatter.reformat(video_frame, format=settings.pix_fmt, threads=1)

    def _finish(self) -> None:
        self._container.mux(self._stream.encode(None))
        self._container.close()
        # the codec freed now, by the thread that closes the encoder (SVT-AV1: ~5 ms of munmap
        # at 640x480), not wherever this object is dropped: at the end of a conversion, that is
        # the main thread once the last camera has flushed, when nothing else runs
        del self._stream, self._container

    def _discard(self) -> None:
        with contextlib.suppress(Exception):  # the file is thrown away; nothing useful to report
            self._container.close()
