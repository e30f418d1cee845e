"""``roboflow submit --manifest jobs.json``: the original's manifest of inputs, with a task per input.

The manifest is the original's ``{"jobs": [{"source": ..., "output": ..., "max_attempts": ...}]}``
(or just the list), where a job may also be a bare source string and may name its ``task``. The
original submitted each job as a batch of its own; here jobs that share an output (and
``max_attempts``) become one batch, so they merge into one dataset in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from roboflow_core import ConfigError

__all__ = ["ManifestBatch", "ManifestJob", "manifest_batches", "read_manifest"]

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
"""A manifest larger than this is refused (it is read whole)."""


class ManifestJob(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One input of a manifest."""

    source: str
    task: str | None = None
    output: str | None = None
    max_attempts: int | None = None


class _Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    jobs: list[ManifestJob | str]


@dataclass(slots=True)
class ManifestBatch:
    """The jobs of a manifest that go into one batch: one output, one ``max_attempts``."""

    output: str
    max_attempts: int
    sources: list[str] = field(default_factory=list)
    tasks: dict[str, str] = field(default_factory=dict)


def read_manifest(raw: bytes, *, path: str) -> list[ManifestJob]:
    """The jobs of a manifest file's content.

    Raises:
        ConfigError: Not a manifest (names the file and what is wrong: an unknown key, a job
            without a source, a bad type), or it lists no job.
    """
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ConfigError(f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes", path=path)
    try:
        value = msgspec.json.decode(raw)
        found = msgspec.convert(value if isinstance(value, dict) else {"jobs": value}, _Manifest)
    except (msgspec.ValidationError, msgspec.DecodeError) as err:
        raise ConfigError(
            f'not a manifest ({{"jobs": [{{"source": ..., "task": ...}}, ...]}}): {err}', path=path
        ) from err
    jobs = [ManifestJob(source=j) if isinstance(j, str) else j for j in found.jobs]
    if not jobs:
        raise ConfigError("the manifest lists no jobs", path=path)
    for i, job in enumerate(jobs):
        if not job.source.strip():
            raise ConfigError("a job's source is empty", path=path, key=f"jobs[{i}].source")
        if job.max_attempts is not None and job.max_attempts < 1:
            raise ConfigError("max_attempts must be >= 1", path=path, key=f"jobs[{i}].max_attempts")
    return jobs


def manifest_batches(
    jobs: list[ManifestJob], *, output: str | None, max_attempts: int, path: str
) -> list[ManifestBatch]:
    """Group jobs into batches by output and ``max_attempts`` (a job's own, else the defaults), in
    the order each group first appears.

    Raises:
        ConfigError: A job has no output and none is given, or one source is listed twice in a
            batch with different tasks.
    """
    batches: dict[tuple[str, int], ManifestBatch] = {}
    for i, job in enumerate(jobs):
        out = job.output or output
        if out is None:
            raise ConfigError("the job names no output and no --output is given", path=path, key=f"jobs[{i}]")
        attempts = job.max_attempts or max_attempts
        batch = batches.setdefault((out, attempts), ManifestBatch(out, attempts))
        if job.source not in batch.sources:
            batch.sources.append(job.source)
        if job.task is not None and batch.tasks.setdefault(job.source, job.task) != job.task:
            raise ConfigError(
                f"{job.source} is listed twice with different tasks", path=path, key=f"jobs[{i}].task"
            )
    return list(batches.values())
