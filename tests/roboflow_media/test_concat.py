"""concat_videos: stream-copy joins with exact segment start times."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from tests._media import write_index_last

from roboflow_core.config import VideoConfig
from roboflow_core.errors import MediaError
from roboflow_media import concat_videos, is_faststart, iter_video_frames, open_encoder, probe_video

from .conftest import BACKEND_CODECS, FPS, HEIGHT, WIDTH, assert_frames_match, make_frames


def _segment(path: Path, frames: list[np.ndarray], config: VideoConfig, width: int = WIDTH) -> Path:
    encoder = open_encoder(path, width=width, height=HEIGHT, fps=FPS, config=config)
    for frame in frames:
        encoder.encode(frame[:, :width])
    encoder.close()
    return path


@pytest.mark.parametrize(("backend", "codec", "canonical"), BACKEND_CODECS)
def test_three_segments_join_in_order(tmp_path: Path, backend: str, codec: str, canonical: str) -> None:
    config = VideoConfig(codec=codec, backend=backend)  # type: ignore[arg-type]
    lengths = [3, 5, 2]
    frames = make_frames(sum(lengths))
    starts = [0, 3, 8]
    segments = [
        _segment(tmp_path / f"ep{j}.mp4", frames[s : s + n], config)
        for j, (s, n) in enumerate(zip(starts, lengths, strict=True))
    ]
    output = tmp_path / "all.mp4"
    concat_videos(segments, output)
    probe = probe_video(output)
    assert (probe.frames, probe.codec, probe.first_pts_s) == (10, canonical, 0.0)
    assert probe.pts_s == pytest.approx([i / FPS for i in range(10)], abs=1e-9)
    assert probe.duration_s == pytest.approx(10 / FPS)
    assert_frames_match(list(iter_video_frames(output)), frames)


def test_mismatched_inputs_are_rejected(tmp_path: Path) -> None:
    frames = make_frames(2)
    first = _segment(tmp_path / "a.mp4", frames, VideoConfig())
    second = _segment(tmp_path / "b.mp4", frames, VideoConfig(), width=WIDTH // 2)
    with pytest.raises(MediaError, match="does not match the first input"):
        concat_videos([first, second], tmp_path / "all.mp4")
    assert not (tmp_path / "all.mp4").exists()


def test_missing_input_is_named(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"missing\.mp4"):
        concat_videos([tmp_path / "missing.mp4"], tmp_path / "all.mp4")


def _packets(path: Path) -> list[tuple[int | None, int | None, bytes]]:
    with av.open(str(path)) as container:
        return [(p.pts, p.dts, bytes(p)) for p in container.demux(video=0) if p.size]


@pytest.mark.parametrize(("codec", "canonical"), [("libsvtav1", "av1"), ("libx264", "h264")])
def test_pyav_encoder_writes_the_index_first_as_a_remux_does(
    tmp_path: Path, codec: str, canonical: str
) -> None:
    encoded = _segment(tmp_path / "ep.mp4", make_frames(6), VideoConfig(codec=codec, backend="pyav"))
    remuxed = tmp_path / "remuxed.mp4"
    concat_videos([encoded], remuxed)
    assert is_faststart(encoded) and is_faststart(remuxed)
    assert _packets(encoded) == _packets(remuxed)
    if canonical == "av1":  # square pixels declared as the remux declares them: the same file
        assert encoded.read_bytes() == remuxed.read_bytes()


def test_is_faststart_reads_the_top_level_boxes(tmp_path: Path) -> None:
    encoded = _segment(tmp_path / "ep.mp4", make_frames(3), VideoConfig(codec="libx264", backend="pyav"))
    index_last = tmp_path / "index-last.mp4"
    write_index_last(encoded, index_last)
    assert probe_video(index_last).frames == 3 and not is_faststart(index_last)
    data = encoded.read_bytes()
    moov = data.index(b"moov") - 4
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: moov + 100])  # the index box runs past the end of the file
    text = tmp_path / "text.mp4"
    text.write_text("not a video at all")
    for path in (cut, text, tmp_path / "missing.mp4"):
        assert not is_faststart(path), path
