"""``open_encoder``: pick a backend for a :class:`VideoConfig` and open a streaming encoder.

Backends: ``pyav`` (in-process, the default), ``ffmpeg`` (the system command) and ``nvenc``
(PyNvVideoCodec). ``auto`` means NVENC where usable, else PyAV. A request for NVENC where it is
not usable (no PyNvVideoCodec, no driver, a GPU without an encoder, depth or gray input) falls
back to PyAV rather than failing, so one config runs on every machine; the encoder's ``backend``
says which ran and ``fallback_reason`` why NVENC did not.
"""

from __future__ import annotations

import logging
from pathlib import Path

from roboflow_core.config import VideoConfig
from roboflow_core.errors import MediaError
from roboflow_media._base import Backend, VideoEncoder
from roboflow_media._cpus import available_cpus
from roboflow_media._nvenc_backend import NVENC_CODECS, NvencEncoder, nvenc_unavailable_reason
from roboflow_media._pyav_backend import PyAVEncoder
from roboflow_media._settings import EncodeSettings, resolve_settings

__all__ = ["cores_per_encoder", "open_encoder"]

_log = logging.getLogger(__name__)


def open_encoder(
    path: str | Path,
    *,
    width: int,
    height: int,
    fps: int,
    config: VideoConfig,
    channels: int = 3,
    depth: bool = False,
    cores: int | None = None,
) -> VideoEncoder:
    """Open a streaming encoder writing ``path`` (its directory must exist).

    Args:
        path: Output file (``.mp4``).
        width: Frame width (even for 4:2:0 pixel formats).
        height: Frame height (even for 4:2:0 pixel formats).
        fps: Frame rate; frame ``i`` gets pts ``i / fps``.
        config: Codec, crf, preset, gop, pix_fmt and backend.
        channels: 3 for RGB frames, 1 for ``(H, W, 1)`` gray frames.
        depth: Frames are ``(H, W, 1)`` ``uint16`` 12-bit depth codes (0..4095), encoded with
            ``config.depth`` (HEVC lossless by default) as ``gray12le`` (implies ``channels=1``;
            PyAV or ffmpeg, never NVENC).
        cores: CPU cores the encoder may aim to use (SVT-AV1's ``lp``; other encoders keep
            their own defaults); ``None``: all of them. See :func:`cores_per_encoder`.

    Returns:
        The encoder; ``encoder.backend`` names the backend that runs.

    Raises:
        MediaError: Bad size, fps, codec or channel count, or the backend cannot start.
    """
    path = Path(path)
    if fps <= 0:
        raise MediaError(f"fps must be a positive integer, got {fps}", path=str(path))
    settings = resolve_settings(
        config, width=width, height=height, channels=channels, depth=depth, cores=cores
    )
    backend, fallback_reason = _choose_backend(config.backend, settings)
    try:
        encoder = _encoder_class(backend)(path, settings, width=width, height=height, fps=fps)
    except MediaError:
        raise
    except Exception as err:  # PyAV, subprocess and PyNvVideoCodec errors alike
        raise MediaError(
            f"cannot start the {backend} encoder ({settings.codec}): {err}", path=str(path)
        ) from err
    encoder.fallback_reason = fallback_reason
    return encoder


def cores_per_encoder(encoders: int) -> int:
    """This process's CPUs (:func:`~roboflow_media.available_cpus`: its affinity, a container's CPU
    limit, its share of ``convert -j N``) shared among ``encoders`` encoding at once (at least 1 each).

    SVT-AV1 otherwise sizes every encoder for all CPUs: two cameras on 2 cores ran about 100
    threads, whose switching cost about 12% more CPU than with each encoder aiming at one core (the
    same bytes either way).
    """
    return max(1, available_cpus() // max(1, encoders))


def _encoder_class(backend: Backend) -> type[VideoEncoder]:
    if backend == "ffmpeg":  # it alone runs a process: subprocess is imported for it only (~3 ms)
        from roboflow_media._ffmpeg_backend import FFmpegEncoder

        return FFmpegEncoder
    return NvencEncoder if backend == "nvenc" else PyAVEncoder


def _choose_backend(requested: str, settings: EncodeSettings) -> tuple[Backend, str | None]:
    if requested == "pyav":
        return "pyav", None
    if requested == "ffmpeg":
        return "ffmpeg", None
    reason = _nvenc_obstacle(settings)
    if reason is None:
        return "nvenc", None
    if requested == "nvenc":
        _log.warning("NVENC requested but %s; encoding with PyAV instead", reason)
    return "pyav", reason


def _nvenc_obstacle(settings: EncodeSettings) -> str | None:
    if settings.canonical not in NVENC_CODECS:
        return f"NVENC cannot encode {settings.canonical}"
    if settings.channels != 3:
        return "NVENC takes only RGB input here"
    return nvenc_unavailable_reason()
