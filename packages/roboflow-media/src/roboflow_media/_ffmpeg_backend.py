"""Encoding in an ``ffmpeg`` child process fed raw frames on stdin.

The process is started with :class:`subprocess.Popen` rather than ``ffmpeg.run_async`` because
SVT-AV1 needs ``SVT_LOG=1`` in its environment to stop printing banners, and stderr goes to a
temporary file (a pipe could fill up and stall ffmpeg); it is reported when ffmpeg fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from roboflow_core.errors import MediaError
from roboflow_media._base import VideoEncoder
from roboflow_media._settings import EncodeSettings

__all__ = ["FFmpegEncoder"]

_STDERR_TAIL = 2000


class FFmpegEncoder(VideoEncoder):
    """Encodes with the system ``ffmpeg`` command."""

    backend = "ffmpeg"

    def __init__(self, path: Path, settings: EncodeSettings, *, width: int, height: int, fps: int) -> None:
        super().__init__(path, settings, width=width, height=height, fps=fps)
        executable = shutil.which("ffmpeg")
        if executable is None:
            raise MediaError("the ffmpeg backend needs the ffmpeg command on PATH", path=str(path))
        size, pix_fmt = f"{width}x{height}", settings.input_format
        source = ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", size, "-r", str(fps), "-i", "pipe:"]
        output = ["-vcodec", settings.codec, "-pix_fmt", settings.pix_fmt]
        output += [arg for key, value in settings.options.items() for arg in (f"-{key}", str(value))]
        args = [executable, "-hide_banner", "-loglevel", "error", *source, *output, "-y", str(path)]
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        self._process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr,
            env={**os.environ, "SVT_LOG": "1"},
        )  # fmt: skip

    def _write(self, frame: NDArray[Any]) -> None:
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).data)
        except BrokenPipeError as err:
            raise MediaError(self._failure("exited while receiving frames"), path=str(self.path)) from err

    def _finish(self) -> None:
        assert self._process.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # reported through the exit status below
            self._process.stdin.close()
        if self._process.wait() != 0:
            raise MediaError(self._failure("failed"), path=str(self.path))
        self._stderr.close()

    def _discard(self) -> None:
        assert self._process.stdin is not None
        with contextlib.suppress(OSError):
            self._process.stdin.close()
        self._process.kill()
        self._process.wait()
        self._stderr.close()

    def _failure(self, what: str) -> str:
        self._process.kill()
        code = self._process.wait()
        self._stderr.seek(0)
        stderr = self._stderr.read().decode(errors="replace").strip()[-_STDERR_TAIL:]
        return f"ffmpeg ({self.settings.codec}) {what} with exit status {code}: {stderr or 'no output'}"
