"""BackgroundEncoder: parallel encoding, back-pressure, errors surfacing in the caller."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from roboflow_core.config import VideoConfig
from roboflow_core.errors import ConfigError, MediaError
from roboflow_media import BackgroundEncoder, EncodedVideo, iter_video_frames, open_encoder, probe_video

from .conftest import FPS, HEIGHT, WIDTH, assert_frames_match, make_frames


def _open(path: Path, backend: str = "pyav") -> BackgroundEncoder:
    config = VideoConfig(codec="libx264", backend=backend)  # type: ignore[arg-type]
    return BackgroundEncoder(
        open_encoder(path, width=WIDTH, height=HEIGHT, fps=FPS, config=config), queue_size=2
    )


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_two_cameras_encode_in_parallel(tmp_path: Path, backend: str) -> None:
    frames = make_frames(6)
    cameras = [_open(tmp_path / f"cam{i}.mp4", backend) for i in range(2)]
    for frame in frames:
        for camera in cameras:
            camera.encode(frame)
    results = [camera.close() for camera in cameras]
    assert [r.frames for r in results] == [6, 6]
    for result in results:
        assert_frames_match(list(iter_video_frames(result.path)), frames)


@pytest.mark.parametrize(("count", "batch"), [(1, 4), (5, 4), (8, 4), (3, 1)])
def test_every_frame_is_encoded_whatever_the_batch(tmp_path: Path, count: int, batch: int) -> None:
    config = VideoConfig(codec="libx264")
    inner = open_encoder(tmp_path / "v.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=config)
    frames = make_frames(count)
    with BackgroundEncoder(inner, queue_size=8, batch=batch) as encoder:
        for frame in frames:
            encoder.encode(frame)
        result = encoder.close()
    assert result.frames == count
    assert_frames_match(list(iter_video_frames(result.path)), frames)


def test_the_first_frame_is_encoded_without_waiting_for_a_batch(tmp_path: Path) -> None:
    """The worker starts on the first frame at once (the conversion's start-up); later frames go
    in batches."""
    config = VideoConfig(codec="libx264")
    inner = open_encoder(tmp_path / "v.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=config)
    prepared = threading.Event()

    def prepare(frame: np.ndarray) -> np.ndarray:
        prepared.set()
        return frame

    frames = make_frames(2)
    with BackgroundEncoder(inner, queue_size=8, batch=4, prepare=prepare) as encoder:
        encoder.encode(frames[0])
        assert prepared.wait(5), "the first frame waited for a batch"
        encoder.encode(frames[1])
        result = encoder.close()
    assert result.frames == 2


def test_prepare_runs_in_the_worker_on_every_frame_and_its_error_surfaces(tmp_path: Path) -> None:
    config = VideoConfig(codec="libx264")
    inner = open_encoder(tmp_path / "v.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=config)
    frames = make_frames(6)
    seen: list[str] = []

    def prepare(frame: np.ndarray) -> np.ndarray:
        seen.append(threading.current_thread().name)
        if len(seen) == 5:
            raise ConfigError("bad frame 4")
        return 255 - frame

    encoder = BackgroundEncoder(inner, queue_size=8, batch=2, prepare=prepare)
    with pytest.raises(ConfigError, match="bad frame 4"):
        for frame in frames:
            encoder.encode(frame)
        encoder.close()
    encoder.abort()
    assert seen == ["encode:v.mp4"] * 5
    assert not (tmp_path / "v.mp4").exists()

    inner = open_encoder(tmp_path / "w.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=config)
    with BackgroundEncoder(inner, prepare=lambda frame: 255 - frame) as encoder:
        for frame in frames:
            encoder.encode(frame)
        result = encoder.close()
    assert_frames_match(list(iter_video_frames(result.path)), [255 - f for f in frames])


def test_observe_sees_each_frame_as_queued_after_it_was_encoded(tmp_path: Path) -> None:
    """``observe`` (statistics) reads the frame that was queued, not what ``prepare`` made of it,
    once the encoder has taken it; its error surfaces like the encoder's."""
    config = VideoConfig(codec="libx264")
    inner = open_encoder(tmp_path / "v.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=config)
    frames = make_frames(5)
    seen: list[tuple[str, int, int]] = []

    def observe(frame: np.ndarray) -> None:
        index = next(i for i, f in enumerate(frames) if f is frame)
        seen.append((threading.current_thread().name, index, inner.frames))

    with BackgroundEncoder(inner, batch=2, prepare=lambda frame: 255 - frame, observe=observe) as encoder:
        for frame in frames:
            encoder.encode(frame)
        result = encoder.close()
    assert seen == [("encode:v.mp4", i, i + 1) for i in range(5)]
    assert_frames_match(list(iter_video_frames(result.path)), [255 - f for f in frames])

    def refuse(frame: np.ndarray) -> None:
        raise ConfigError("bad statistics")

    inner = open_encoder(tmp_path / "w.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=config)
    encoder = BackgroundEncoder(inner, observe=refuse)
    with pytest.raises(ConfigError, match="bad statistics"):
        for frame in frames:
            encoder.encode(frame)
        encoder.close()
    encoder.abort()
    assert not (tmp_path / "w.mp4").exists()


def test_error_in_the_thread_surfaces_on_next_encode(tmp_path: Path) -> None:
    encoder = _open(tmp_path / "v.mp4")
    encoder.encode(np.zeros((4, 4, 3), np.uint8))  # accepted by the queue, rejected by the worker
    with pytest.raises(MediaError, match="frame 0 is 4x4x3"):
        for frame in make_frames(10):
            encoder.encode(frame)
    with pytest.raises(MediaError, match="frame 0 is 4x4x3"):
        encoder.close()
    encoder.abort()
    assert not (tmp_path / "v.mp4").exists()


def test_error_surfaces_on_close(tmp_path: Path) -> None:
    encoder = _open(tmp_path / "v.mp4")
    encoder.encode(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(MediaError, match="the encoder expects 96x128x3"):
        encoder.close()


def test_context_manager_aborts_on_exception(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), _open(tmp_path / "v.mp4") as encoder:
        encoder.encode(make_frames(1)[0])
        raise RuntimeError("boom")
    assert not (tmp_path / "v.mp4").exists()


def test_queue_size_must_be_positive(tmp_path: Path) -> None:
    encoder = open_encoder(tmp_path / "v.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=VideoConfig())
    with pytest.raises(MediaError, match="queue_size"):
        BackgroundEncoder(encoder, queue_size=0)
    encoder.abort()


def test_finish_flushes_in_the_worker_so_cameras_finish_in_parallel(tmp_path: Path) -> None:
    frames = make_frames(5)
    cameras = [_open(tmp_path / f"cam{i}.mp4") for i in range(2)]
    for frame in frames:
        for camera in cameras:
            camera.encode(frame)
    for camera in cameras:
        camera.finish()
    with pytest.raises(MediaError, match="already closed"):
        cameras[0].encode(frames[0])
    results = [camera.close() for camera in cameras]
    assert [r.frames for r in results] == [5, 5]
    for result in results:
        assert_frames_match(list(iter_video_frames(result.path)), frames)
    with pytest.raises(MediaError, match="already closed"):
        cameras[0].close()


def test_no_frame_is_an_error_on_close(tmp_path: Path) -> None:
    encoder = _open(tmp_path / "v.mp4")
    encoder.finish()
    with pytest.raises(MediaError, match="no frames were encoded"):
        encoder.close()
    assert not (tmp_path / "v.mp4").exists()


def test_on_closed_runs_in_the_worker_on_the_finished_file_and_its_error_surfaces(tmp_path: Path) -> None:
    config = VideoConfig(codec="libx264")
    frames = make_frames(4)
    seen: list[tuple[str, int, int]] = []

    def check(result: EncodedVideo) -> None:
        seen.append((threading.current_thread().name, result.frames, probe_video(result.path).frames))
        if result.path.name == "w.mp4":
            raise ConfigError("bad video")

    for name in ("v.mp4", "w.mp4"):
        inner = open_encoder(tmp_path / name, width=WIDTH, height=HEIGHT, fps=FPS, config=config)
        encoder = BackgroundEncoder(inner, on_closed=check)
        for frame in frames:
            encoder.encode(frame)
        encoder.finish()
        if name == "v.mp4":
            assert encoder.close().frames == 4
        else:
            with pytest.raises(ConfigError, match="bad video"):
                encoder.close()
    assert seen == [("encode:v.mp4", 4, 4), ("encode:w.mp4", 4, 4)]
    assert (tmp_path / "v.mp4").exists()
    assert not (tmp_path / "w.mp4").exists()  # the video that failed its check is removed
