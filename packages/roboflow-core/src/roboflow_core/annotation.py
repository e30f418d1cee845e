"""Skill marks (the original's ``annotation_file``): one recording split into one episode per mark.

The file is a JSON object with ``marks``, each with ``startPosition``/``endPosition`` (fractions
0-1 of the recording), ``skillAtomic`` and ``enSkillDetail`` (the episode's task is
``"{skillAtomic}: {enSkillDetail}"``), and the original's other fields (``taskName``, ``deviceSn``,
``skillDetail``, ``markType``, ``markStart``/``markEnd``, ``duration``, ...), which are kept but
do not change the conversion.

A mark covers the frames ``k`` of the recording's grid of ``n`` frames with
``start * n <= k < end * n`` (see :meth:`SkillMark.frames`): adjacent marks share no frame and
leave none out.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import msgspec

from roboflow_core.errors import ConfigError, DatasetError

__all__ = ["Annotation", "SkillMark", "parse_annotation", "read_annotation"]

_EPS = 1e-9  # positions are decimal fractions: 0.5 * 30 must be frame 15, not 15.000000000000002


class SkillMark(msgspec.Struct, frozen=True, rename="camel"):
    """One mark: a stretch of the recording showing one skill."""

    start_position: float
    end_position: float
    skill_atomic: str
    en_skill_detail: str
    skill_detail: str = ""
    mark_type: str = ""
    mark_start: str = ""
    mark_end: str = ""
    duration: float | None = None
    task_id: str = ""

    @property
    def task(self) -> str:
        """The episode's task, as the original wrote it."""
        return f"{self.skill_atomic}: {self.en_skill_detail}"

    def frames(self, n_frames: int, *, label: str, path: str | None = None) -> range:
        """The frames of a grid of ``n_frames`` this mark covers.

        Raises:
            DatasetError: The mark covers no frame of the grid (naming it by ``label``).
        """
        first = math.ceil(self.start_position * n_frames - _EPS)
        end = math.ceil(self.end_position * n_frames - _EPS)
        if first >= end:
            raise DatasetError(
                f"mark {label} covers no frame of the recording's {n_frames}-frame grid "
                f"(startPosition {self.start_position}, endPosition {self.end_position})",
                path=path,
            )
        return range(first, end)


class Annotation(msgspec.Struct, frozen=True, rename="camel"):
    """An annotation file: its marks in time order, with their labels for messages."""

    marks: tuple[SkillMark, ...] = ()
    task_name: str = ""
    device_sn: str = ""
    labels: tuple[str, ...] = ()


def _label(index: int, mark: SkillMark) -> str:
    return f"marks[{index}] ({mark.task!r})"


def parse_annotation(text: str | bytes, *, source: str = "<annotation>") -> Annotation:
    """Parse and check an annotation file's JSON.

    Returns:
        The annotation, its marks sorted by start (``labels`` name each by its place in the file).

    Raises:
        ConfigError: Not the original's format, no marks, a mark outside the recording (positions
            not ``0 <= start < end <= 1``), or two marks that overlap; names the mark(s).
    """
    try:
        raw = msgspec.json.decode(text, type=Annotation)
    except msgspec.DecodeError as err:
        raise ConfigError(f"not a skill-mark annotation: {err}", path=source) from err
    if not raw.marks:
        raise ConfigError("the annotation has no marks: nothing to convert", path=source, key="marks")
    for i, mark in enumerate(raw.marks):
        if not 0.0 <= mark.start_position < mark.end_position <= 1.0:
            raise ConfigError(
                f"mark {_label(i, mark)} lies outside the recording: startPosition "
                f"{mark.start_position} and endPosition {mark.end_position} must satisfy "
                "0 <= start < end <= 1",
                path=source,
                key=f"marks[{i}]",
            )
    order = sorted(range(len(raw.marks)), key=lambda i: raw.marks[i].start_position)
    for before, after in itertools.pairwise(order):
        a, b = raw.marks[before], raw.marks[after]
        if b.start_position < a.end_position:
            raise ConfigError(
                f"mark {_label(after, b)} overlaps mark {_label(before, a)}: it starts at "
                f"{b.start_position}, before the other ends at {a.end_position}",
                path=source,
                key=f"marks[{after}]",
            )
    return msgspec.structs.replace(
        raw,
        marks=tuple(raw.marks[i] for i in order),
        labels=tuple(_label(i, raw.marks[i]) for i in order),
    )


def read_annotation(annotation_file: str, *, base: str | Path | None = None) -> tuple[bytes, Annotation]:
    """Read an annotation file: its bytes (what a batch stores) and the annotation.

    A relative ``annotation_file`` is taken from ``base`` (the config file's directory).

    Raises:
        ConfigError: The file cannot be read, or see :func:`parse_annotation`.
    """
    path = Path(annotation_file)
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    try:
        text = path.read_bytes()
    except OSError as err:
        raise ConfigError(
            f"cannot read the annotation file: {err.strerror}", path=str(path), key="annotation_file"
        ) from err
    return text, parse_annotation(text, source=str(path))
