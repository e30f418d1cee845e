"""Convert one recording into one staged episode: read, align, extract, encode, stage."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from roboflow_core import (
    DecodeError,
    MappingType,
    MissingTopicError,
    RoboflowConfig,
    RoboflowError,
)
from roboflow_core.config import Mapping
from roboflow_dataset.align import AlignmentPlan, TrackSpec, iter_aligned, plan_alignment, scan_stamps
from roboflow_dataset.extract import ImageExtractor, StampExtractor, VectorExtractor
from roboflow_dataset.lerobot import EpisodeStager, FeatureSpec, StagedEpisode
from roboflow_dataset.sources import Message, Source, open_source
from roboflow_executor import prefetch
from roboflow_storage import display_url, is_remote, recording_bytes

__all__ = ["RecordingPlan", "convert_recording"]

_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class RecordingPlan:
    """What pass 1 found: the grid and how the episode will look."""

    path: str
    plan: AlignmentPlan
    input_bytes: int


def _tolerance_ns(mapping: Mapping, config: RoboflowConfig) -> int:
    ms = mapping.tolerance_ms or config.alignment.tolerance_ms
    if ms is None:
        return 1_000_000_000 // config.dataset.fps  # one frame period
    return int(ms * _MS)


class _Extractors:
    """The per-topic decoders of one recording and how their values form features."""

    def __init__(self, source: Source, mappings: Sequence[Mapping]) -> None:
        types = source.topic_types()
        self.path = source.path
        self.by_topic: dict[str, ImageExtractor | StampExtractor | VectorExtractor] = {}
        self.cameras: dict[str, str] = {}  # topic -> camera feature
        self.vectors: dict[str, list[str]] = {}  # feature -> topics, in mapping order
        self.dtypes: dict[str, str] = {}
        self.mappings = {m.topic: m for m in mappings if m.topic in types}
        for m in self.mappings.values():
            if m.is_image:
                self.by_topic[m.topic] = ImageExtractor(m.topic, types[m.topic])
                self.cameras[m.topic] = m.camera_key or m.feature
                continue
            if m.mapping_type is MappingType.TIMESTAMP:
                self.by_topic[m.topic] = StampExtractor(m.topic)
                self.dtypes[m.feature] = "float64"
            else:
                self.by_topic[m.topic] = VectorExtractor(m.topic, types[m.topic], m.fields, m.names)
                self.dtypes.setdefault(m.feature, "float32")
            self.vectors.setdefault(m.feature, []).append(m.topic)

    def decode(self, msg: Message) -> np.ndarray:
        try:
            return self.by_topic[msg.topic].from_message(msg)
        except DecodeError as err:
            raise DecodeError(
                err.reason, path=self.path, topic=msg.topic, log_time_ns=msg.log_time_ns
            ) from err

    def features(self) -> list[FeatureSpec]:
        specs = []
        for feature, topics in self.vectors.items():
            names: list[str] = []
            for topic in topics:
                extractor = self.by_topic[topic]
                assert not isinstance(extractor, ImageExtractor) and extractor.names is not None
                names.extend(extractor.names)
            specs.append(
                FeatureSpec(name=feature, dtype=self.dtypes[feature], shape=(len(names),), names=tuple(names))
            )
        return specs

    def frame(self, values: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        numeric = {
            feature: values[topics[0]] if len(topics) == 1 else np.concatenate([values[t] for t in topics])
            for feature, topics in self.vectors.items()
        }
        images = {feature: values[topic] for topic, feature in self.cameras.items()}
        return numeric, images


def _track_specs(source: Source, config: RoboflowConfig) -> list[TrackSpec]:
    present = set(source.topic_types())
    specs = []
    for m in config.mappings:
        if m.topic not in present:
            if m.required:
                have = ", ".join(sorted(present)) or "no topics"
                raise MissingTopicError(
                    f"mapped topic is not in the recording (it has: {have})",
                    path=source.path,
                    topic=m.topic,
                )
            continue
        specs.append(TrackSpec(m.topic, m.effective_policy, _tolerance_ns(m, config), m.required))
    return specs


def convert_recording(
    path: str | os.PathLike[str],
    config: RoboflowConfig,
    staging_dir: Path,
    *,
    task: str | None = None,
    on_planned: Callable[[RecordingPlan], None] | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> StagedEpisode:
    """Convert one recording into a staged episode under ``staging_dir``.

    Args:
        path: The recording (file or ROS2 bag directory, or its object-store URL / prefix).
        config: The conversion config.
        staging_dir: Where the staged episode goes (created; removed again on failure).
        task: The episode's task; defaults to ``config.dataset.task``.
        on_planned: Called once after pass 1 with the grid (for progress totals).
        on_frames: Called with the number of frames staged since the last call.

    Raises:
        RoboflowError: Naming file, topic and reason (missing topic, corrupt file, bad message).
    """
    recording: str | Path = path if isinstance(path, str) and is_remote(path) else Path(path)
    name = display_url(recording)
    with open_source(recording) as source:
        specs = _track_specs(source, config)
        topics = [s.topic for s in specs]
        stamps = scan_stamps(source.messages(topics), topics, time_source=config.alignment.time_source)
        plan = plan_alignment(stamps, specs, config.dataset.fps, path=name)
        if on_planned is not None:
            on_planned(RecordingPlan(name, plan, recording_bytes(recording)))
        extractors = _Extractors(source, [m for m in config.mappings if m.topic in plan.topics])
        frames = prefetch(
            iter_aligned(source.messages(list(plan.topics)), plan, extractors.decode),
            depth=config.flushing.queue_frames,
            name=f"decode:{name.rstrip('/').rsplit('/', 1)[-1]}",
        )
        stager: EpisodeStager | None = None
        try:
            batch = 0
            for values in frames:
                numeric, images = extractors.frame(values)
                if stager is None:
                    stager = EpisodeStager(
                        staging_dir,
                        fps=config.dataset.fps,
                        features=extractors.features(),
                        cameras=list(extractors.cameras.values()),
                        video=config.video,
                        task=task if task is not None else config.dataset.task,
                        source=name,
                        flush_rows=config.flushing.max_frames_per_chunk,
                    )
                stager.add_frame(numeric, images)
                batch += 1
                if on_frames is not None and batch >= 10:
                    on_frames(batch)
                    batch = 0
            if stager is None:
                raise DecodeError("no frame could be aligned", path=name)
            staged = stager.finish()
            if on_frames is not None and batch:
                on_frames(batch)
            return staged
        except BaseException as err:
            if stager is not None:
                stager.abort()
            if isinstance(err, RoboflowError) and "path" not in err.context:
                raise type(err)(err.reason, path=name, **err.context) from err
            raise
