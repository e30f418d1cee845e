"""Convert one recording into one staged episode: read, align, extract, encode, stage."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar

import numpy as np

from roboflow_core import (
    CorruptRecordingError,
    DatasetError,
    DecodeError,
    MappingType,
    MissingTopicError,
    RecordingLimitError,
    RoboflowConfig,
    RoboflowError,
    SourceError,
)
from roboflow_core.config import Mapping
from roboflow_dataset.align import AlignmentPlan, TrackSpec, iter_aligned, plan_alignment, scan_stamps
from roboflow_dataset.align_online import NotOnePass, OnePassAligner
from roboflow_dataset.extract import ImageExtractor, StampExtractor, VectorExtractor
from roboflow_dataset.lerobot import ClosedSegment, EpisodeStager, FeatureSpec, StagedEpisode
from roboflow_dataset.lerobot.staging import MANIFEST, closed_segments
from roboflow_dataset.sources import (
    Message,
    SalvagedSource,
    Source,
    StreamedRecording,
    open_source,
    open_streamed,
)
from roboflow_executor import Prefetcher
from roboflow_storage import display_url, is_remote, recording_bytes

if TYPE_CHECKING:
    from roboflow_storage import Spool

__all__ = ["RecordingPlan", "convert_recording"]

_MS = 1_000_000
_BATCH = 4
"""Decoded frames handed from the decoding thread to the encoding one together (fewer wake-ups)."""
_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)
log = logging.getLogger("roboflow.convert")


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

    def __init__(
        self, source: Source | StreamedRecording | SalvagedSource, mappings: Sequence[Mapping]
    ) -> None:
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
                self.cameras[m.topic] = m.feature
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


def _track_spec(mapping: Mapping, config: RoboflowConfig) -> TrackSpec:
    tolerance = _tolerance_ns(mapping, config)
    return TrackSpec(mapping.topic, mapping.effective_policy, tolerance, mapping.required)


def _track_specs(source: Source | SalvagedSource, config: RoboflowConfig) -> list[TrackSpec]:
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
        specs.append(_track_spec(m, config))
    return specs


def _fingerprint(name: str, plan: AlignmentPlan, config: RoboflowConfig, task: str) -> str:
    """What a stage of this recording holds: source, grid, config and task (resume checks it)."""
    facts = [name, plan.start_ns, plan.n_frames, config.content_hash(), task]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()


def _staged_before(
    staging_dir: Path, fingerprint: str, on_segment: Callable[[ClosedSegment], None] | None
) -> StagedEpisode | EpisodeStager | None:
    """What an earlier call left in ``staging_dir``: a finished episode, a stage to resume, or nothing.

    Without a closed segment, whatever is there is removed (the directory is the caller's stage).

    Raises:
        DatasetError: The stage is of another recording, config or task.
    """
    if (staging_dir / MANIFEST).is_file():
        episode = StagedEpisode.load(staging_dir)
        if episode.fingerprint != fingerprint:
            raise DatasetError(
                f"the staged episode is of something else (fingerprint {episode.fingerprint!r}, expected "
                f"{fingerprint!r}): a different recording or config; remove the staging directory",
                path=str(staging_dir),
            )
        return episode
    if closed_segments(staging_dir):
        return EpisodeStager.resume(staging_dir, fingerprint=fingerprint, on_segment=on_segment)
    shutil.rmtree(staging_dir, ignore_errors=True)
    return None


_READ_REPORT = 1000
"""Pass 1 reports its progress (``on_read``) every this many messages."""


def _logging_times(
    messages: Iterable[Message], topics: Sequence[str], on_read: Callable[[int], None] | None = None
) -> tuple[Iterator[Message], dict[str, array[int]]]:
    """Pass 1's messages, noting each topic's log times on the way (where a resume reads from;
    8 bytes per message, dropped once pass 2 starts), and reporting how many were read."""
    times = {t: array("q") for t in topics}

    def noted() -> Iterator[Message]:
        unreported = 0
        for msg in messages:
            bucket = times.get(msg.topic)
            if bucket is not None:
                bucket.append(msg.log_time_ns)
            unreported += 1
            if on_read is not None and unreported >= _READ_REPORT:
                on_read(unreported)
                unreported = 0
            yield msg
        if on_read is not None and unreported:
            on_read(unreported)

    return noted(), times


def _resume_point(
    plan: AlignmentPlan, log_times: dict[str, array[int]], skip: int
) -> tuple[int | None, dict[str, int]]:
    """Where pass 2 reads from to continue at frame ``skip``: the log time of the earliest message
    a later frame uses, and each topic's position (in pass 1's order) of its first message there.

    Messages are read in log order, so per topic the log times never decrease and the messages at
    or after that time are exactly those from the returned positions on.
    """
    if skip == 0 or skip >= plan.n_frames:
        return None, {}
    start = min(log_times[t][int(p.chosen[skip:].min())] for t, p in plan.topics.items())
    first = {
        t: int(np.searchsorted(np.frombuffer(log_times[t], dtype=np.int64), start, side="left"))
        for t in plan.topics
    }
    return start, first


def convert_recording(
    path: str | os.PathLike[str],
    config: RoboflowConfig,
    staging_dir: Path,
    *,
    task: str | None = None,
    on_planned: Callable[[RecordingPlan], None] | None = None,
    on_frames: Callable[[int], None] | None = None,
    segment_frames: int | None = None,
    on_segment: Callable[[ClosedSegment], None] | None = None,
    resume: bool = False,
    on_read: Callable[[int], None] | None = None,
    spool: Spool | None = None,
) -> StagedEpisode:
    """Convert one recording into a staged episode under ``staging_dir``.

    An unsegmented conversion of a single-file MCAP or ROS1 recording reads it once, in file
    order, and a remote one while it downloads (:mod:`roboflow_dataset.align_online`); anything
    that one pass cannot vouch for (messages out of order, a late topic, too much to hold, a
    damaged file) is converted again with two passes, which have the last word. Other recordings,
    and segmented or resumed conversions, take two passes: timestamps first, then the chosen
    messages.

    Args:
        path: The recording (file or ROS2 bag directory, or its object-store URL / prefix).
        config: The conversion config.
        staging_dir: Where the staged episode goes (created). On failure it is removed, except
            for the closed segments of a segmented stage (see ``resume``).
        task: The episode's task; defaults to ``config.dataset.task``.
        on_planned: Called once with the grid (for progress totals): after pass 1, or at the
            end of a one-pass conversion.
        on_frames: Called with the number of frames staged since the last call (frames found
            staged by ``resume`` count as staged in the first call). Negative when a one-pass
            conversion is discarded for two passes, taking back the frames it reported.
        segment_frames: Stage in segments of this many frames (see :class:`EpisodeStager`);
            ``None`` stages one part.
        on_segment: Called with each closed segment: its files are complete (upload them, then
            its manifest).
        resume: Continue what an earlier, failed or killed call left in ``staging_dir``: after its
            last closed segment (pass 2 then skips the staged frames without decoding them), or
            return the finished episode found there. Without closed segments it starts afresh.
            A resumed stage keeps the segment size it was started with.
        on_read: Called now and then while pass 1 reads timestamps, with the number of messages
            read since the last call: progress before any frame exists (a watchdog's).
        spool: Where a remote recording is downloaded to be read (default: the process-wide
            :func:`~roboflow_storage.default_spool` of the environment).

    Raises:
        RoboflowError: Naming file, topic and reason (missing topic, corrupt file, bad message).
        DatasetError: With ``resume``, ``staging_dir`` holds a stage of another recording, config
            or task.
    """
    job = _Job.make(path, config, staging_dir, task, on_planned, on_frames, on_read, spool)
    with salvage_hint(config):
        if segment_frames is None and not resume:
            staged = _convert_one_pass(job)
            if staged is not None:
                return staged
        return _convert_two_pass(job, segment_frames, on_segment, resume=resume)


@contextmanager
def salvage_hint(config: RoboflowConfig) -> Iterator[None]:
    """Without ``[source] salvage``, a damaged recording's error says how to convert what it holds."""
    try:
        yield
    except CorruptRecordingError as err:
        if config.source.salvage or isinstance(err, RecordingLimitError):
            raise
        raise CorruptRecordingError(
            f"{err.reason}; --salvage (config: [source] salvage = true) converts an interrupted "
            "MCAP or ROS1 recording up to its last complete message",
            **err.context,
        ) from err


def open_two_pass(job: _Job) -> Source | SalvagedSource:
    """The recording for two passes; with ``[source] salvage``, a damaged MCAP or ROS1 file is read
    front to back up to the damage (:class:`SalvagedSource`)."""
    alignment = job.config.alignment
    try:
        return open_source(
            job.recording,
            timeline=alignment.timeline,
            timeline_rate_hz=alignment.timeline_rate_hz,
            spool=job.spool,
        )
    except CorruptRecordingError:
        if not job.config.source.salvage:
            raise
        streamed = open_streamed(job.recording, salvage=True, spool=job.spool)
        if streamed is None:
            raise
        return SalvagedSource(streamed)


def _convert_two_pass(
    job: _Job,
    segment_frames: int | None,
    on_segment: Callable[[ClosedSegment], None] | None,
    *,
    resume: bool,
) -> StagedEpisode:
    """Pass 1 reads every timestamp and plans the grid; pass 2 decodes the chosen messages."""
    config, name, staging_dir, on_frames = job.config, job.name, job.staging_dir, job.on_frames
    with open_two_pass(job) as source:
        plan, log_times = _plan_pass(source, job)
        fingerprint = _fingerprint(name, plan, config, job.task)
        before = _staged_before(staging_dir, fingerprint, on_segment) if resume else None
        if isinstance(before, StagedEpisode):
            if on_frames is not None:
                on_frames(before.length)
            return before
        extractors = _Extractors(source, [m for m in config.mappings if m.topic in plan.topics])

        def new_stager() -> EpisodeStager:
            return job.new_stager(extractors, segment_frames, on_segment, fingerprint)

        stage = _Stage(extractors, before, new_stager, on_frames, name)
        start_ns, first = _resume_point(plan, log_times, stage.skip)
        del log_times  # one int per message: not needed while pass 2 runs
        frames = iter_aligned(
            source.messages(list(plan.topics), start_ns=start_ns),
            plan,
            extractors.decode,
            start_frame=stage.skip,
            first_positions=first,
        )
        return _drain(frames, stage, job)


def _plan_pass(source: Source | SalvagedSource, job: _Job) -> tuple[AlignmentPlan, dict[str, array[int]]]:
    """Pass 1: every timestamp of the mapped topics, and the grid planned from them (reported)."""
    config = job.config
    specs = _track_specs(source, config)
    topics = [s.topic for s in specs]
    scanned, log_times = _logging_times(source.messages(topics), topics, job.on_read)
    stamps = scan_stamps(scanned, topics, time_source=config.alignment.time_source)
    plan = plan_alignment(
        stamps, specs, config.dataset.fps, path=job.name, max_duration_ns=config.dataset.max_episode_ns
    )
    job.planned(plan)
    return plan, log_times


class _Sink(Protocol[_T_co]):
    """Where pass 2's frames go, from frame ``skip`` on."""

    @property
    def skip(self) -> int: ...

    def add(self, index: int, values: dict[str, Any]) -> None: ...

    def finish(self) -> _T_co: ...

    def abort(self) -> None: ...


def _drain(frames: Iterator[dict[str, Any]], sink: _Sink[_T], job: _Job) -> _T:
    """Pass 2: decode ahead in a thread, feed the frames to ``sink``; abort it on any error."""
    ahead = Prefetcher(
        frames, depth=job.config.flushing.queue_frames, batch=_BATCH, name=job.thread_name, stage="decode"
    )
    try:
        with ahead:
            for index, values in enumerate(ahead, start=sink.skip):
                sink.add(index, values)
        return sink.finish()
    except BaseException as err:
        sink.abort()
        _raise_named(err, job.name)


@dataclass(frozen=True, slots=True)
class _Job:
    """What both ways of converting one recording share."""

    recording: str | Path
    name: str
    config: RoboflowConfig
    staging_dir: Path
    task: str
    on_planned: Callable[[RecordingPlan], None] | None
    on_frames: Callable[[int], None] | None
    on_read: Callable[[int], None] | None = None
    spool: Spool | None = None

    @classmethod
    def make(
        cls,
        path: str | os.PathLike[str],
        config: RoboflowConfig,
        staging_dir: Path,
        task: str | None,
        on_planned: Callable[[RecordingPlan], None] | None,
        on_frames: Callable[[int], None] | None,
        on_read: Callable[[int], None] | None = None,
        spool: Spool | None = None,
    ) -> _Job:
        recording: str | Path = path if isinstance(path, str) and is_remote(path) else Path(path)
        task = task if task is not None else config.dataset.task
        name = display_url(recording)
        return cls(recording, name, config, staging_dir, task, on_planned, on_frames, on_read, spool)

    @property
    def thread_name(self) -> str:
        return f"decode:{self.name.rstrip('/').rsplit('/', 1)[-1]}"

    def planned(self, plan: AlignmentPlan, nbytes: int | None = None) -> None:
        if self.on_planned is not None:
            size = recording_bytes(self.recording) if nbytes is None else nbytes
            self.on_planned(RecordingPlan(self.name, plan, size))

    def fresh_stage(self, extractors: _Extractors) -> _Stage:
        """An unsegmented stage from frame 0."""
        return _Stage(
            extractors, None, lambda: self.new_stager(extractors, None, None, ""), self.on_frames, self.name
        )

    def new_stager(
        self,
        extractors: _Extractors,
        segment_frames: int | None,
        on_segment: Callable[[ClosedSegment], None] | None,
        fingerprint: str,
        *,
        directory: Path | None = None,
        task: str | None = None,
    ) -> EpisodeStager:
        """A stager of this recording's episode (or of one of its skills: ``directory``, ``task``)."""
        config = self.config
        return EpisodeStager(
            directory or self.staging_dir,
            fps=config.dataset.fps,
            features=extractors.features(),
            cameras=list(extractors.cameras.values()),
            video=config.video,
            task=self.task if task is None else task,
            source=self.name,
            flush_rows=config.flushing.max_frames_per_chunk,
            segment_frames=segment_frames,
            on_segment=on_segment,
            fingerprint=fingerprint,
        )


def _convert_one_pass(job: _Job) -> StagedEpisode | None:
    """Convert reading the recording once (overlapping a remote one's download), or ``None`` when
    it has no such read or the one pass cannot vouch for its frames: two passes then convert it
    (see :mod:`roboflow_dataset.align_online`).

    Unsegmented conversions only: a segmented stage's fingerprint needs the grid up front.
    """
    streamed = open_streamed(job.recording, salvage=job.config.source.salvage, spool=job.spool)
    if streamed is None:
        return None
    config = job.config
    made: list[_Extractors] = []

    def decode(message: Message) -> np.ndarray:
        if not made:
            made.append(_Extractors(streamed, [m for m in config.mappings if m.topic in aligner.topics]))
        return made[0].decode(message)

    aligner = OnePassAligner(
        [_track_spec(m, config) for m in config.mappings],
        config.dataset.fps,
        decode,
        time_source=config.alignment.time_source,
        max_held_bytes=config.flushing.max_memory_bytes,
        path=job.name,
        max_duration_ns=config.dataset.max_episode_ns,
    )
    plans: list[AlignmentPlan] = []

    def frames() -> Iterator[dict[str, np.ndarray]]:
        for message in streamed.messages({m.topic for m in config.mappings}):
            yield from aligner.add(message)
        plan, rest = aligner.finish()
        plans.append(plan)
        yield from rest

    stage: _Stage | None = None
    with streamed:
        try:
            with Prefetcher(
                frames(),
                depth=config.flushing.queue_frames,
                batch=_BATCH,
                name=job.thread_name,
                stage="decode",
            ) as ahead:
                for index, values in enumerate(ahead):
                    if stage is None:
                        stage = job.fresh_stage(made[0])
                    stage.add(index, values)
            if stage is None:
                raise NotOnePass("no frame")
            job.planned(plans[0], streamed.nbytes)
            return stage.finish()
        except (NotOnePass, SourceError, DecodeError) as err:
            if stage is not None:
                stage.abort()
                stage.retract()
            log.info("%s: converting with two passes: %s", job.name, err)
            streamed.complete()
            return None
        except BaseException as err:
            if stage is not None:
                stage.abort()
            _raise_named(err, job.name)


def _raise_named(err: BaseException, name: str) -> NoReturn:
    """Re-raise ``err``, naming the recording when a RoboflowError does not name a path."""
    if isinstance(err, RoboflowError) and "path" not in err.context:
        raise type(err)(err.reason, transient=err.transient, path=name, **err.context) from err
    raise err


class _Stage:
    """Pass 2's frames into the stager, from frame ``skip`` on (an earlier stage holds those before);
    the stager is created on the first new frame (the vector names come from the first decoded
    messages)."""

    def __init__(
        self,
        extractors: _Extractors,
        stager: EpisodeStager | None,
        new_stager: Callable[[], EpisodeStager],
        on_frames: Callable[[int], None] | None,
        name: str,
    ) -> None:
        self._extractors = extractors
        self._stager = stager
        self._new_stager = new_stager
        self._on_frames = on_frames
        self._name = name
        self.skip = 0 if stager is None else stager.length
        self._batch = self.skip
        self._reported = 0

    def add(self, index: int, values: dict[str, Any]) -> None:
        numeric, images = self._extractors.frame(values)
        if self._stager is None:
            self._stager = self._new_stager()
        elif index == self.skip:
            self._check_resumed(self._stager)
        self._stager.add_frame(numeric, images)
        self._batch += 1
        if self._batch >= 10:
            self._report()

    def finish(self) -> StagedEpisode:
        if self._stager is None:
            raise DecodeError("no frame could be aligned", path=self._name)
        staged = self._stager.finish()
        self._report()
        return staged

    def abort(self) -> None:
        if self._stager is not None:
            self._stager.abort()

    def retract(self) -> None:
        """Take back the frames reported (their stage was discarded; they are converted again)."""
        if self._on_frames is not None and self._reported:
            self._on_frames(-self._reported)
        self._reported = 0

    def _report(self) -> None:
        if self._on_frames is not None and self._batch:
            self._on_frames(self._batch)
        self._reported += self._batch
        self._batch = 0

    def _check_resumed(self, stager: EpisodeStager) -> None:
        """The resumed stage has the features this conversion extracts (the fingerprint implies it)."""
        extractors = self._extractors
        if (stager.features, stager.cameras) != (
            tuple(extractors.features()),
            tuple(extractors.cameras.values()),
        ):
            raise DatasetError(
                "the staged segments have other features or cameras than this conversion; "
                "remove the staging directory to convert from the start",
                path=self._name,
            )
