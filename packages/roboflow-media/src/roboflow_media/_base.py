"""The encoder interface shared by every backend: frame checks, counting, error wrapping, abort."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal

import msgspec
from numpy.typing import NDArray

from roboflow_core.errors import MediaError
from roboflow_media._settings import EncodeSettings

__all__ = ["Backend", "EncodedVideo", "VideoEncoder"]

Backend = Literal["pyav", "ffmpeg", "nvenc"]


class EncodedVideo(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`VideoEncoder.close` wrote."""

    path: Path
    frames: int
    backend: Backend
    codec: str
    """Canonical codec name (``av1``, ``h264``, ``hevc``, ``ffv1``), not the encoder's."""
    pix_fmt: str
    width: int
    height: int
    fps: int


class VideoEncoder(ABC):
    """A streaming encoder: frame ``i`` gets pts ``i / fps``, the first pts is exactly 0.

    Use :func:`roboflow_media.open_encoder` to get one. Not thread-safe; wrap it in a
    :class:`roboflow_media.BackgroundEncoder` to encode in a thread of its own.
    """

    backend: ClassVar[Backend]

    def __init__(self, path: Path, settings: EncodeSettings, *, width: int, height: int, fps: int) -> None:
        self.path = path
        self.settings = settings
        self.width = width
        self.height = height
        self.fps = fps
        self.frames = 0
        self.fallback_reason: str | None = None
        """Why NVENC was requested (or ``auto``) but not used; set by ``open_encoder``."""
        self._shape = (height, width, settings.channels)
        self._closed = False

    @abstractmethod
    def _write(self, frame: NDArray[Any]) -> None:
        """Encode one checked frame as number ``self.frames``."""

    @abstractmethod
    def _finish(self) -> None:
        """Flush the encoder and finalise the file."""

    @abstractmethod
    def _discard(self) -> None:
        """Release resources without finalising; must not raise."""

    def encode(self, frame: NDArray[Any]) -> None:
        """Append one frame.

        Args:
            frame: ``(H, W, 3)`` RGB or ``(H, W, 1)`` gray ``uint8`` (``uint16`` for depth), as opened.

        Raises:
            MediaError: The frame does not fit this encoder, or encoding failed.
        """
        if self._closed:
            raise MediaError("encoder is already closed", path=str(self.path))
        if frame.shape != self._shape or frame.dtype != self.settings.dtype:
            got = "x".join(map(str, frame.shape))
            want = "x".join(map(str, self._shape))
            raise MediaError(
                f"frame {self.frames} is {got} {frame.dtype}, "
                f"the encoder expects {want} {self.settings.dtype}",
                path=str(self.path),
            )
        self._guarded(self._write, frame)
        self.frames += 1

    def close(self) -> EncodedVideo:
        """Flush and finalise the file.

        Raises:
            MediaError: Finalising failed (the partial file is removed) or no frame was encoded.
        """
        if self._closed:
            raise MediaError("encoder is already closed", path=str(self.path))
        if self.frames == 0:
            self.abort()
            raise MediaError("no frames were encoded", path=str(self.path))
        self._guarded(self._finish)
        self._closed = True
        return EncodedVideo(
            path=self.path,
            frames=self.frames,
            backend=self.backend,
            codec=self.settings.canonical,
            pix_fmt=self.settings.pix_fmt,
            width=self.width,
            height=self.height,
            fps=self.fps,
        )

    def abort(self) -> None:
        """Stop encoding and remove the partial file; safe to call more than once."""
        if not self._closed:
            self._closed = True
            self._discard()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> VideoEncoder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        """Run a backend step; any failure aborts the encoder and surfaces as a MediaError."""
        try:
            step(*args)
        except MediaError:
            self.abort()
            raise
        except Exception as err:  # any dependency error becomes a MediaError naming the file
            self.abort()
            raise MediaError(
                f"{self.backend} encoder ({self.settings.codec}) failed at frame {self.frames}: {err}",
                path=str(self.path),
            ) from err
