"""decode_yuv_image: every layout against an independent converter (PyAV's swscale), and errors."""

from __future__ import annotations

import av
import numpy as np
import pytest

from roboflow_core.errors import MediaError
from roboflow_media import decode_yuv_image
from roboflow_media.yuv_image import yuv_to_rgb

H, W = 8, 12
RNG = np.random.default_rng(3)
LUMA = RNG.integers(16, 236, (H, W), dtype=np.uint8)
U_BLOCKS = RNG.integers(16, 241, (H // 2, W // 2), dtype=np.uint8)
V_BLOCKS = RNG.integers(16, 241, (H // 2, W // 2), dtype=np.uint8)


def _pack(layout: str, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> bytes:
    """A layout's bytes from full-resolution planes (chroma taken at its own resolution)."""
    if layout == "i444":
        return y.tobytes() + u.tobytes() + v.tobytes()
    if layout == "i422":
        return y.tobytes() + u[:, ::2].tobytes() + v[:, ::2].tobytes()
    if layout == "yuy2":
        quads = np.stack([y[:, 0::2], u[:, ::2], y[:, 1::2], v[:, ::2]], axis=-1)
        return quads.tobytes()
    u4, v4 = u[::2, ::2], v[::2, ::2]
    if layout == "i420":
        return y.tobytes() + u4.tobytes() + v4.tobytes()
    return y.tobytes() + np.stack([u4, v4], axis=-1).tobytes()  # nv12


def _swscale(data: bytes, layout: str, full_range: bool) -> np.ndarray:
    pix_fmt = {"nv12": "nv12", "yuy2": "yuyv422", "i420": "yuv420p", "i422": "yuv422p", "i444": "yuv444p"}[
        layout
    ]
    if full_range:
        pix_fmt = pix_fmt.replace("yuv", "yuvj")
    shape = {
        "nv12": (H * 3 // 2, W),
        "i420": (H * 3 // 2, W),
        "i422": (H * 2, W),
        "i444": (3, H, W),
        "yuy2": (H, W, 2),
    }[layout]
    frame = av.VideoFrame.from_ndarray(np.frombuffer(data, np.uint8).reshape(shape), format=pix_fmt)
    return frame.to_ndarray(format="rgb24")


LAYOUTS = [
    ("nv12", False),
    ("yuy2", False),
    ("i420", False),
    ("i420", True),
    ("i422", False),
    ("i422", True),
    ("i444", False),
    ("i444", True),
]


@pytest.mark.parametrize(
    ("layout", "full_range"), [lf for lf in LAYOUTS if lf != ("i422", True)]
)  # no yuvj422p in PyAV
def test_layouts_match_swscale(layout: str, full_range: bool) -> None:
    # chroma constant over the image: swscale's chroma filters then agree with any upsampling
    u, v = np.full((H, W), 90, np.uint8), np.full((H, W), 170, np.uint8)
    data = _pack(layout, LUMA, u, v)
    decoded = decode_yuv_image(data, height=H, width=W, layout=layout, full_range=full_range)  # type: ignore[arg-type]
    assert decoded.shape == (H, W, 3) and decoded.dtype == np.uint8
    assert (
        np.abs(decoded.astype(int) - _swscale(data, layout, full_range).astype(int)).max() <= 3
    )  # swscale rounds coarser


@pytest.mark.parametrize(("layout", "full_range"), LAYOUTS)
def test_chroma_covers_its_pixels(layout: str, full_range: bool) -> None:
    u = U_BLOCKS.repeat(2, axis=0).repeat(2, axis=1)
    v = V_BLOCKS.repeat(2, axis=0).repeat(2, axis=1)
    expected = decode_yuv_image(
        _pack("i444", LUMA, u, v), height=H, width=W, layout="i444", full_range=full_range
    )
    decoded = decode_yuv_image(
        _pack(layout, LUMA, u, v), height=H, width=W, layout=layout, full_range=full_range
    )  # type: ignore[arg-type]
    assert np.array_equal(decoded, expected)


@pytest.mark.parametrize("full_range", [True, False])
def test_yuv_to_rgb_rounds_bt601(full_range: bool) -> None:
    """Every 5th level of each component: BT.601 in float64, rounded and clipped, to within float32's
    rounding."""
    levels = np.arange(0, 256, 5, dtype=np.uint8)
    y, u, v = np.meshgrid(levels, levels, levels, indexing="ij")
    rgb = yuv_to_rgb(y, u, v, full_range)
    assert rgb.shape == (*y.shape, 3) and rgb.flags.c_contiguous
    luma, cb, cr = (c.astype(np.float64) for c in (y, u - 128.0, v - 128.0))
    if not full_range:
        luma, cb, cr = (luma - 16) * 255 / 219, cb * 255 / 224, cr * 255 / 224
    exact = np.stack([luma + 1.402 * cr, luma - 0.344136 * cb - 0.714136 * cr, luma + 1.772 * cb], axis=-1)
    difference = np.abs(rgb - np.clip(np.floor(exact + 0.5), 0, 255))
    assert difference.max() <= 1 and difference.mean() < 1e-3


def test_y8_ranges() -> None:
    luma = np.array([[16, 235, 126, 0]], dtype=np.uint8)
    full = decode_yuv_image(luma, height=1, width=4, layout="y8", full_range=True)
    limited = decode_yuv_image(luma, height=1, width=4, layout="y8", full_range=False)
    assert full[..., 0].tolist() == [[16, 235, 126, 0]]
    assert limited[..., 0].tolist() == [[0, 255, 128, 0]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"height": 3, "width": 4, "layout": "nv12"}, "divisible"),
        ({"height": 2, "width": 3, "layout": "yuy2"}, "divisible"),
        ({"height": 8, "width": 8, "layout": "i444"}, "expected 192"),
        ({"height": 2, "width": 2, "layout": "rgb"}, "unknown YUV layout"),
    ],
)
def test_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(MediaError, match=match):
        decode_yuv_image(bytes(100), full_range=False, **kwargs)  # type: ignore[arg-type]
