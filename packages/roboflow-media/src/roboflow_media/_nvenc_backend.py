"""NVENC encoding through PyNvVideoCodec, used only where it imports and the GPU has an encoder.

``import PyNvVideoCodec`` raises ``RuntimeError`` (not ``ImportError``) without a GPU driver, and
data-centre GPUs such as the H100 have NVDEC but no NVENC engine, so usability is probed by
creating a small encoder once per process. NVENC writes an elementary stream (Annex B / OBU);
``close`` remuxes it into the container with pts ``i`` in time base ``1/fps``.

Not exercised by the test suite: no machine it runs on has an NVENC engine.
"""

from __future__ import annotations

import contextlib
import functools
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from numpy.typing import NDArray

from roboflow_media._base import VideoEncoder
from roboflow_media._settings import EncodeSettings

__all__ = ["NVENC_CODECS", "NvencEncoder", "nvenc_unavailable_reason"]

NVENC_CODECS: dict[str, str] = {"h264": "h264", "hevc": "hevc", "av1": "obu"}
"""Canonical codec -> FFmpeg demuxer of its elementary stream."""


@functools.cache
def nvenc_unavailable_reason() -> str | None:
    """Why NVENC cannot be used here, or ``None`` when it can (probed once per process)."""
    try:
        import PyNvVideoCodec as nvc
    except (ImportError, RuntimeError, OSError) as err:
        return f"PyNvVideoCodec is not usable: {err}"
    try:
        nvc.CreateEncoder(256, 256, "NV12", True, codec="h264")
    except Exception as err:  # the binding raises plain exceptions for a missing engine
        return f"the GPU has no usable NVENC encoder: {err}"
    return None


class NvencEncoder(VideoEncoder):
    """Encodes RGB frames on the GPU (converted to NV12 on the CPU first)."""

    backend = "nvenc"

    def __init__(self, path: Path, settings: EncodeSettings, *, width: int, height: int, fps: int) -> None:
        import PyNvVideoCodec as nvc

        super().__init__(path, settings, width=width, height=height, fps=fps)
        self._encoder: Any = nvc.CreateEncoder(
            width, height, "NV12", True,
            codec=settings.canonical, fps=str(fps), gop=str(settings.gop), bf="0",
        )  # fmt: skip
        self._elementary = path.with_name(f"{path.name}.{settings.canonical}")
        self._sink = self._elementary.open("wb")

    def _write(self, frame: NDArray[Any]) -> None:
        nv12 = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="nv12").to_ndarray()
        self._sink.write(bytes(self._encoder.Encode(nv12)))

    def _finish(self) -> None:
        self._sink.write(bytes(self._encoder.EndEncode()))
        self._sink.close()
        try:
            _remux_elementary(self._elementary, self.path, NVENC_CODECS[self.settings.canonical], self.fps)
        finally:
            self._elementary.unlink()

    def _discard(self) -> None:
        self._sink.close()
        with contextlib.suppress(FileNotFoundError):
            self._elementary.unlink()


def _remux_elementary(source: Path, output: Path, demuxer: str, fps: int) -> None:
    """Mux an elementary stream without B-frames, giving packet ``i`` pts = dts = ``i / fps``."""
    time_base = Fraction(1, fps)
    with av.open(str(source), format=demuxer) as src, av.open(str(output), "w") as dst:
        in_stream = src.streams.video[0]
        out_stream = dst.add_stream_from_template(in_stream, opaque=True)
        out_stream.time_base = time_base
        for index, packet in enumerate(p for p in src.demux(in_stream) if p.size):
            packet.pts = packet.dts = index
            packet.duration = 1
            packet.time_base = time_base
            packet.stream = out_stream
            dst.mux(packet)
