"""open_encoder: timestamps, content, backends, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from roboflow_core.config import DepthConfig, VideoConfig
from roboflow_core.errors import MediaError
from roboflow_media import (
    available_cpus,
    cores_per_encoder,
    iter_gray16_frames,
    iter_video_frames,
    open_encoder,
    probe_video,
)

from .conftest import BACKEND_CODECS, FPS, HEIGHT, WIDTH, assert_frames_match, make_frames, mean_abs_error


@pytest.mark.parametrize(("backend", "codec", "canonical"), BACKEND_CODECS)
def test_encode_gives_one_frame_per_input_at_i_over_fps(
    tmp_path: Path, backend: str, codec: str, canonical: str
) -> None:
    frames = make_frames(7)
    config = VideoConfig(codec=codec, backend=backend)  # type: ignore[arg-type]
    encoder = open_encoder(tmp_path / "v.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=config)
    for frame in frames:
        encoder.encode(frame)
    result = encoder.close()
    probe = probe_video(result.path)
    assert (result.backend, result.frames, result.codec, probe.codec) == (backend, 7, canonical, canonical)
    assert (probe.frames, probe.fps, probe.width, probe.height, probe.pix_fmt) == (
        7,
        FPS,
        WIDTH,
        HEIGHT,
        "yuv420p",
    )
    assert probe.first_pts_s == 0.0
    assert probe.pts_s == pytest.approx([i / FPS for i in range(7)], abs=1e-9)
    assert probe.duration_s == pytest.approx(7 / FPS)
    assert_frames_match(list(iter_video_frames(result.path)), frames)


@pytest.mark.parametrize("fps", [7, 30])
def test_probe_times_are_the_floats_of_the_exact_fractions(tmp_path: Path, fps: int) -> None:
    """probe_video divides ticks as ints; every time equals the float of its exact Fraction."""
    encoder = open_encoder(tmp_path / "v.mp4", width=WIDTH, height=HEIGHT, fps=fps, config=VideoConfig())
    for frame in make_frames(40):
        encoder.encode(frame)
    probe = probe_video(encoder.close().path)
    with av.open(str(tmp_path / "v.mp4")) as container:
        stream = container.streams.video[0]
        base = Fraction(stream.time_base)
        ends = [(p.pts, p.duration or 0) for p in container.demux(stream) if p.size and p.pts is not None]
    assert base.denominator % fps == 0 and base.denominator != fps  # ticks of 1/fps are not binary fractions
    assert probe.pts_s == tuple(sorted(float(Fraction(p) * base) for p, _ in ends))
    assert probe.duration_s == float(max(p + d for p, d in ends) * base)
    assert probe.pts_s != tuple(p * float(base) for p, _ in sorted(ends))  # a float time base would differ


def test_gray_frames_encode(tmp_path: Path) -> None:
    frames = [frame[..., :1].copy() for frame in make_frames(3)]
    encoder = open_encoder(
        tmp_path / "g.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=VideoConfig(), channels=1
    )
    for frame in frames:
        encoder.encode(frame)
    encoder.close()
    decoded = list(iter_video_frames(tmp_path / "g.mp4"))
    assert mean_abs_error(decoded[2][..., :1], frames[2]) < 6


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
@pytest.mark.parametrize("width", [WIDTH, 65])
def test_depth_codes_are_lossless_gray12le_hevc(tmp_path: Path, backend: str, width: int) -> None:
    rng = np.random.default_rng(width)
    codes = [rng.integers(0, 4096, (HEIGHT, width, 1), dtype=np.uint16) for _ in range(4)]
    config = VideoConfig(backend=backend)  # type: ignore[arg-type]
    encoder = open_encoder(tmp_path / "d.mp4", width=width, height=HEIGHT, fps=FPS, config=config, depth=True)
    for frame in codes:
        encoder.encode(frame)
    result = encoder.close()
    probe = probe_video(result.path)
    assert (result.codec, result.pix_fmt, probe.codec, probe.pix_fmt, probe.frames) == (
        "hevc",
        "gray12le",
        "hevc",
        "gray12le",
        4,
    )
    assert probe.pts_s == pytest.approx([i / FPS for i in range(4)], abs=1e-9)
    decoded = list(iter_gray16_frames(result.path))
    assert len(decoded) == 4
    for got, want in zip(decoded, codes, strict=True):
        np.testing.assert_array_equal(got, want)


def test_depth_needs_a_12_bit_gray_encoder(tmp_path: Path) -> None:
    config = VideoConfig(depth=DepthConfig(codec="libx264", lossless=False))  # 8/10-bit gray only
    with pytest.raises(MediaError, match="'libx264' cannot encode gray12le"):
        open_encoder(tmp_path / "d.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=config, depth=True)
    missing = VideoConfig(depth=DepthConfig(codec="no-such-encoder", lossless=False))
    with pytest.raises(MediaError, match="this PyAV/FFmpeg build lacks"):
        open_encoder(tmp_path / "d.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=missing, depth=True)


def test_frame_of_another_size_is_rejected(tmp_path: Path) -> None:
    encoder = open_encoder(tmp_path / "v.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=VideoConfig())
    with pytest.raises(MediaError, match=r"frame 0 is 48x64x3 uint8, the encoder expects 96x128x3 uint8"):
        encoder.encode(np.zeros((48, 64, 3), np.uint8))
    encoder.abort()


def test_odd_size_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="yuv420p needs an even width and height, got 65x48"):
        open_encoder(tmp_path / "v.mp4", width=65, height=48, fps=FPS, config=VideoConfig())


def test_abort_removes_the_partial_file(tmp_path: Path) -> None:
    encoder = open_encoder(tmp_path / "v.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=VideoConfig())
    encoder.encode(make_frames(1)[0])
    encoder.abort()
    assert not (tmp_path / "v.mp4").exists()


@pytest.mark.parametrize("backend", ["nvenc", "auto"])
def test_nvenc_without_gpu_falls_back_to_pyav(tmp_path: Path, backend: str) -> None:
    config = VideoConfig(codec="libx264", backend=backend)  # type: ignore[arg-type]
    encoder = open_encoder(tmp_path / "v.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=config)
    assert encoder.backend == "pyav"
    assert encoder.fallback_reason is not None
    encoder.abort()


def test_unknown_codec_is_named(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="unknown video encoder 'libnope'"):
        open_encoder(tmp_path / "v.mp4", width=64, height=48, fps=FPS, config=VideoConfig(codec="libnope"))


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_bad_encoder_option_is_a_media_error(tmp_path: Path, backend: str) -> None:
    config = VideoConfig(codec="libx264", preset="no-such-preset", backend=backend)  # type: ignore[arg-type]
    with pytest.raises(MediaError, match="libx264"):
        encoder = open_encoder(tmp_path / "v.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=config)
        for frame in make_frames(2):
            encoder.encode(frame)
        encoder.close()
    assert not (tmp_path / "v.mp4").exists()


_SVT_SCRIPT = """
import os, sys, tempfile
import os
import subprocess
import sys
from pathlib import Path
import roboflow_media, roboflow_media._pyav_backend
from roboflow_core.config import VideoConfig
print(os.environ.get("SVT_LOG"))
encoder = roboflow_media.open_encoder(
    Path(tempfile.mkdtemp()) / "v.mp4", width=128, height=96, fps=10, config=VideoConfig(codec=sys.argv[1])
)
print(os.environ.get("SVT_LOG"))
encoder.abort()
"""


@pytest.mark.parametrize(
    ("codec", "preset", "after"),
    [("libsvtav1", None, "1"), ("libsvtav1", "3", "3"), ("libx264", None, "None")],
)
def test_svt_log_is_set_when_an_svt_encoder_opens_not_at_import(
    tmp_path: Path, codec: str, preset: str | None, after: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SVT_LOG"} | ({"SVT_LOG": preset} if preset else {})
    done = subprocess.run(
        [sys.executable, "-c", _SVT_SCRIPT, codec], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(preset), after]


def test_cores_per_encoder_shares_this_process_cpus() -> None:
    cpus = available_cpus()  # the affinity's, at most a cgroup's limit (tests/roboflow_media/test_cpus.py)
    assert cores_per_encoder(1) == cpus
    assert cores_per_encoder(2) == max(1, cpus // 2)
    assert cores_per_encoder(10 * cpus) == 1  # never none


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_svt_av1_aiming_at_fewer_cores_writes_the_same_video(tmp_path: Path, backend: str) -> None:
    """An SVT-AV1 encoder sized for one core starts fewer threads; its bytes are the same."""
    frames = make_frames(8)
    config = VideoConfig(codec="libsvtav1", backend=backend)  # type: ignore[arg-type]
    threads = {}
    for name, cores in (("all", None), ("one", 1)):
        encoder = open_encoder(
            tmp_path / f"{name}.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=config, cores=cores
        )
        encoder.encode(frames[0])
        threads[name] = len(os.listdir("/proc/self/task"))
        for frame in frames[1:]:
            encoder.encode(frame)
        encoder.close()
    assert (tmp_path / "all.mp4").read_bytes() == (tmp_path / "one.mp4").read_bytes()
    if backend == "pyav" and len(os.sched_getaffinity(0)) > 1:
        assert threads["one"] < threads["all"]


def test_an_encoder_needs_a_core(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="at least 1 core"):
        open_encoder(tmp_path / "v.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=VideoConfig(), cores=0)


def test_rgb_frames_encode_exactly_as_pyav_alone_converts_them(tmp_path: Path) -> None:
    """Converting in the calling thread (one swscale thread) changes no byte of the video."""
    frames = make_frames(8)
    config = VideoConfig(codec="libx264")
    encoder = open_encoder(tmp_path / "ours.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=config)
    for frame in frames:
        encoder.encode(frame)
    encoder.close()
    with av.open(str(tmp_path / "plain.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options=encoder.settings.options)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i, frame in enumerate(frames):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")  # PyAV converts it in encode
            video_frame.pts = i
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))
    assert _packets(tmp_path / "ours.mp4") == _packets(tmp_path / "plain.mp4")


def _packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]
