"""decode_compressed_frame and YuvFrame: a JPEG kept in its YUV planes, and what encoders make of it."""

from __future__ import annotations

import struct
from io import BytesIO
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from roboflow_core.config import VideoConfig
from roboflow_core.errors import MediaError
from roboflow_media import (
    YuvFrame,
    decode_compressed_frame,
    decode_compressed_image,
    iter_video_frames,
    open_encoder,
)
from roboflow_media.yuv_image import yuv_to_rgb

from .conftest import FPS, HEIGHT, WIDTH, assert_frames_match, make_frames


def _jpeg(pixels: np.ndarray, **options: object) -> bytes:
    buffer = BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", **options)
    return buffer.getvalue()


def _planes(frame: av.VideoFrame) -> list[np.ndarray]:
    return [
        np.frombuffer(memoryview(p), np.uint8).reshape(p.height, p.line_size)[:, : p.width].astype(int)
        for p in frame.planes
    ]


def _noisy(height: int, width: int, seed: int = 1) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    noise = np.random.default_rng(seed).integers(0, 30, (height, width, 3))
    ramp = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], axis=-1)
    return (ramp + noise).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("subsampling", [2, 1, 0])  # 4:2:0, 4:2:2, 4:4:4
def test_ycbcr_jpeg_stays_in_its_planes_and_stands_for_its_rgb(subsampling: int) -> None:
    data = _jpeg(_noisy(96, 128), quality=90, subsampling=subsampling)
    frame = decode_compressed_frame(data, "rgb8; jpeg compressed bgr8")
    assert isinstance(frame, YuvFrame)
    rgb = decode_compressed_image(data, "jpeg")
    assert (frame.shape, frame.dtype, frame.ndim) == (rgb.shape, rgb.dtype, 3)
    assert frame.nbytes == sum(p.buffer_size for p in frame.frame.planes)
    as_array = np.asarray(frame)
    assert as_array.shape == rgb.shape
    # FFmpeg's decoder and libjpeg-turbo differ by their IDCT and chroma upsampling: rounding only
    assert np.abs(as_array.astype(int) - rgb).mean() < 1.5


def test_the_encoder_input_differs_from_the_rgb_route_by_rounding_only() -> None:
    data = _jpeg(_noisy(480, 640), quality=85)
    frame = decode_compressed_frame(data, "jpeg")
    assert isinstance(frame, YuvFrame)
    direct = frame.to_format("yuv420p")
    via_rgb = av.VideoFrame.from_ndarray(decode_compressed_image(data, "jpeg"), format="rgb24").reformat(
        format="yuv420p"
    )
    for ours, theirs in zip(_planes(direct), _planes(via_rgb), strict=True):
        assert ours.shape == theirs.shape
        # the RGB route clips out-of-gamut colours and low-passes chroma (upsampled, then averaged)
        assert np.abs(ours - theirs).max() <= 6
        assert np.abs(ours - theirs).mean() < 0.8
    # tagged as a frame converted from RGB: encoders must not see a key-frame request or a range
    assert (direct.format.name, direct.color_range, direct.colorspace) == ("yuv420p", 0, 2)
    assert direct.pict_type == 0  # what encoders read (libsvtav1, libx264: I forces a key frame)


@pytest.mark.parametrize("stride", [1, 3, 4])
def test_sampled_rgb_is_the_rgb_frame_at_those_pixels(stride: int) -> None:
    data = _jpeg(_noisy(96, 128, seed=5), quality=95)
    frame = decode_compressed_frame(data, "jpeg")
    assert isinstance(frame, YuvFrame)
    sampled = frame.sample_rgb(stride)
    expected = decode_compressed_image(data, "jpeg")[::stride, ::stride]
    assert sampled.shape == expected.shape
    # each pixel with the chroma sample covering it (no upsampling filter): a few levels apart
    assert np.abs(sampled.astype(int) - expected).mean() < 3


@pytest.mark.parametrize("subsampling", [2, 1, 0])  # 4:2:0, 4:2:2, 4:4:4
@pytest.mark.parametrize(("height", "width"), [(96, 128), (95, 127)])
def test_sampled_rgb_converts_the_chroma_sample_covering_each_pixel(
    subsampling: int, height: int, width: int
) -> None:
    frame = decode_compressed_frame(_jpeg(_noisy(height, width), subsampling=subsampling), "jpeg")
    assert isinstance(frame, YuvFrame)
    luma, u, v = (np.asarray(p, dtype=np.uint8) for p in _planes(frame.frame))
    for stride in (1, 2, 3, 4):
        rows, cols = np.arange(0, height, stride), np.arange(0, width, stride)
        at = np.ix_(rows * u.shape[0] // height, cols * u.shape[1] // width)
        expected = yuv_to_rgb(luma[::stride, ::stride], u[at], v[at], full_range=True)
        np.testing.assert_array_equal(frame.sample_rgb(stride), expected)


def test_other_images_decode_as_arrays() -> None:
    gray = _jpeg(_noisy(48, 64)[..., 0])
    assert isinstance(decode_compressed_frame(gray, "mono8; jpeg compressed mono8"), np.ndarray)
    png = BytesIO()
    Image.fromarray(_noisy(48, 64)).save(png, "PNG")
    np.testing.assert_array_equal(
        decode_compressed_frame(png.getvalue(), "png"), decode_compressed_image(png.getvalue(), "png")
    )
    cmyk = BytesIO()
    Image.fromarray(_noisy(48, 64)).convert("CMYK").save(cmyk, "JPEG")
    assert isinstance(decode_compressed_frame(cmyk.getvalue(), "jpeg"), np.ndarray)


def test_damaged_jpegs_are_media_errors() -> None:
    data = _jpeg(_noisy(480, 640), quality=95)
    with pytest.raises(MediaError, match="cannot decode JPEG image"):
        decode_compressed_frame(data[: len(data) // 2], "jpeg")
    with pytest.raises(MediaError, match="cannot decode JPEG image"):
        decode_compressed_frame(data[:40], "jpeg")
    huge = bytearray(_jpeg(_noisy(48, 64)))
    sof = huge.index(b"\xff\xc0")
    huge[sof + 5 : sof + 9] = struct.pack(">HH", 9000, 9000)
    with pytest.raises(MediaError, match="9000x9000 pixels is larger than"):
        decode_compressed_frame(bytes(huge), "jpeg")


def test_a_yuv_frame_is_not_anything_else() -> None:
    with pytest.raises(MediaError, match="full-range planar YUV"):
        YuvFrame(av.VideoFrame(64, 48, "yuv420p"))


@pytest.mark.parametrize("backend", ["pyav", "ffmpeg"])
def test_encoders_take_yuv_frames_and_arrays_alike(tmp_path: Path, backend: str) -> None:
    """The PyAV encoder takes the planes; the ffmpeg pipe gets RGB; both encode the JPEGs' content."""
    frames = make_frames(6)
    decoded = [decode_compressed_frame(_jpeg(f, quality=95), "jpeg") for f in frames]
    assert all(isinstance(f, YuvFrame) for f in decoded)
    config = VideoConfig(codec="libx264", backend=backend)  # type: ignore[arg-type]
    encoder = open_encoder(tmp_path / "v.mp4", width=WIDTH, height=HEIGHT, fps=FPS, config=config)
    for i, frame in enumerate(decoded):
        encoder.encode(frame if i % 2 else np.asarray(frame))  # mixed, as a camera may be
    assert encoder.close().frames == 6
    assert_frames_match(list(iter_video_frames(tmp_path / "v.mp4")), frames)


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
