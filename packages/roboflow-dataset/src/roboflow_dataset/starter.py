"""A commented starter config written from a recording (``roboflow init``).

Cameras (``sensor_msgs/Image`` and ``CompressedImage``, rerun ``Image``, ``EncodedImage`` and
``DepthImage`` entities) become image mappings; a camera whose
first message does not decode is written commented out, with the reason. ``JointState`` topics
become ``observation.state`` and numeric topics whose names say they are commands
(``cmd``, ``command``, ``action``, ``target``, ``goal``, ...) become ``action``; other numeric
topics are listed as commented-out suggestions. The frame rate is the cameras' median rate. The
result always loads (:func:`roboflow_core.loads_config`); it is a start for a person to edit.
"""

from __future__ import annotations

import os
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from roboflow_core import ConfigError, RoboflowError, loads_config
from roboflow_dataset.extract import IMAGE_TYPES, ImageExtractor, default_fields, normalize_msgtype
from roboflow_dataset.inspect import frequency_hz
from roboflow_dataset.sources import Source, TopicInfo, open_source

__all__ = ["starter_config"]

_JOINTS = "sensor_msgs/JointState"
_ACTION_WORDS = re.compile(
    r"(^|[/_.\-])(cmd|command|commands|action|actions|target|goal|desired|control)($|[/_.\-])"
)
_NOISE = {
    "image",
    "image_raw",
    "image_rect",
    "image_rect_color",
    "compressed",
    "compresseddepth",
    "raw",
    "color",
}
_DEFAULT_FPS = 30


@dataclass(frozen=True, slots=True)
class _Camera:
    topic: TopicInfo
    feature: str
    depth: bool
    problem: str | None  # why its first message did not decode (then it is commented out)
    shape: tuple[int, ...] | None


def _camera_name(topic: str, taken: set[str]) -> str:
    parts = [p for p in PurePosixPath("/" + topic.strip("/")).parts[1:] if p.lower() not in _NOISE]
    name = re.sub(r"[^a-z0-9]+", "_", "_".join(parts).lower()).strip("_") or "camera"
    unique, n = name, 2
    while unique in taken:
        unique, n = f"{name}_{n}", n + 1
    taken.add(unique)
    return unique


def _peek_camera(source: Source, topic: TopicInfo) -> tuple[bool, str | None, tuple[int, ...] | None]:
    """(depth, problem, shape) from the topic's first message."""
    named_depth = "depth" in topic.topic.lower()
    try:
        message = next(iter(source.messages(topics=[topic.topic])), None)
        if message is None:
            return named_depth, "no messages", None
        image = ImageExtractor(topic.topic, topic.msgtype).from_message(message)
    except RoboflowError as err:
        return named_depth, f"its first message does not decode: {err}", None
    depth = named_depth or (image.dtype in (np.uint16, np.float32) and image.shape[-1] == 1)
    return depth, None, tuple(int(n) for n in image.shape)


def _comment(text: str) -> list[str]:
    return [f"# {line}".rstrip() for line in text.splitlines()]


def _mapping(
    topic: str, feature: str, kind: str, extra: Iterable[str] = (), *, off: bool = False
) -> list[str]:
    lines = [
        "[[mappings]]",
        f"topic = {_quote(topic)}",
        f"feature = {_quote(feature)}",
        f'mapping_type = "{kind}"',
    ]
    lines += list(extra)
    return [f"# {line}" for line in lines] if off else lines


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fps(rates: Sequence[float]) -> int:
    positive = [r for r in rates if r > 0]
    if not positive:
        return _DEFAULT_FPS
    return max(1, min(round(statistics.median(positive)), 120))


def _cameras(source: Source, topics: Sequence[TopicInfo]) -> list[_Camera]:
    taken: set[str] = set()
    cameras = []
    for t in topics:
        if normalize_msgtype(t.msgtype) in IMAGE_TYPES:
            depth, problem, shape = _peek_camera(source, t)
            name = _camera_name(t.topic, taken)
            if depth and "depth" not in name:
                name = f"{name}_depth"
            cameras.append(_Camera(t, f"observation.images.{name}", depth, problem, shape))
    return cameras


def _camera_lines(cam: _Camera) -> list[str]:
    size = f", {cam.shape[1]}x{cam.shape[0]}" if cam.shape else ""
    note = f"{cam.topic.msgtype}, {cam.topic.count} messages, {frequency_hz(cam.topic):.1f} Hz{size}"
    lines = ["", *_comment(("depth camera: " if cam.depth else "camera: ") + note)]
    if cam.problem is not None:
        lines += _comment(f"left out: {cam.problem}")
    return lines + _mapping(cam.topic.topic, cam.feature, "image", off=cam.problem is not None)


def _numeric_lines(topics: Sequence[TopicInfo], numeric: Sequence[TopicInfo], *, cameras: bool) -> list[str]:
    actions = [t for t in numeric if _ACTION_WORDS.search(t.topic.lower())]
    states = [t for t in numeric if t not in actions and normalize_msgtype(t.msgtype) == _JOINTS]
    lines: list[str] = []
    for feature, kind, group in (("observation.state", "state", states), ("action", "action", actions)):
        for t in group:
            fields = ", ".join(map(_quote, default_fields(t.msgtype) or ()))
            lines += ["", *_comment(f"{t.msgtype}, {t.count} messages, {frequency_hz(t):.1f} Hz")]
            lines += _mapping(t.topic, feature, kind, [f"fields = [{fields}]"])
    if not actions:
        lines += ["", "# No command topic was recognised: map the robot's commands to `action`."]
    others = [t for t in numeric if t not in actions and t not in states]
    if others:
        # with nothing else to map they are the state; else suggestions
        off = cameras or bool(states) or bool(actions)
        what = "not mapped (uncomment to add them to" if off else "mapped, since nothing else is, as"
        lines += ["", f"# Other numeric topics, {what} the state:"]
        for t in others:
            lines += [f"# {t.topic}: {t.msgtype}, {t.count} messages, {frequency_hz(t):.1f} Hz"]
            lines += _mapping(t.topic, "observation.state", "state", off=off)
    skipped = [t for t in topics if normalize_msgtype(t.msgtype) not in IMAGE_TYPES and t not in numeric]
    if skipped:
        lines += ["", "# Topics roboflow cannot map by default (set `fields` to map one):"]
        lines += [f"#   {t.topic}: {t.msgtype}" for t in skipped]
    return lines


def starter_config(path: str | os.PathLike[str]) -> str:
    """The text of a commented starter config for the recording at ``path``.

    Raises:
        SourceError: The recording cannot be opened.
        ConfigError: It has nothing roboflow could map (no decodable camera, no numeric topic).
    """
    where = os.fspath(path)
    with open_source(path) as source:
        topics = [t for t in source.topics() if t.count > 0]
        cameras = _cameras(source, topics)
        start, end = source.start_ns, source.end_ns
        summary = (
            f"{source.format}, {(end - start) / 1e9 if start is not None and end is not None else 0.0:.1f} s"
        )
    numeric = [
        t for t in topics if normalize_msgtype(t.msgtype) not in IMAGE_TYPES and default_fields(t.msgtype)
    ]
    usable = [c for c in cameras if c.problem is None]
    rates = [frequency_hz(c.topic) for c in usable] or [frequency_hz(t) for t in numeric]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", PurePosixPath(where.rstrip("/")).stem) or "dataset"
    lines = [
        f"# Starter config written by `roboflow init` from {where}",
        f"# ({summary}, {len(topics)} topics with messages). Check every mapping, then run:",
        f"#   roboflow convert {where} --config THIS_FILE --output DATASET",
        "",
        "[dataset]",
        f"name = {_quote(name)}",
        f"fps = {_fps(rates)}  # "
        + ("the cameras' median rate" if usable else "no camera: the topics' rate"),
        '# robot_type = "so101"',
        'task = ""  # describe what the robot does in these recordings',
    ]
    if not usable:
        lines += ["", "# No decodable camera topic was found: the dataset will have no videos."]
    for cam in cameras:
        lines += _camera_lines(cam)
    if not usable and not numeric:
        raise ConfigError(
            f"{where} has no camera that decodes and no numeric topic: nothing to map "
            f"({len(topics)} topics with messages; see `roboflow inspect`)"
        )
    lines += _numeric_lines(topics, numeric, cameras=bool(usable))
    lines += [
        "",
        "[video]",
        '# lerobot\'s own defaults; `codec = "libx264"` encodes several times faster',
        'codec = "libsvtav1"',
        "crf = 30",
        "gop = 2",
    ]
    text = "\n".join(lines) + "\n"
    loads_config(text)  # a starter that does not load would be a bug here, not the user's
    return text
