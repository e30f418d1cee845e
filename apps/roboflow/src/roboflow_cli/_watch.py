"""``roboflow batch watch``: a batch's progress followed from the store, for a person at a terminal.

Each look at the store (through the operations service) gives the batch's job counts and frames;
:class:`BatchWatch` turns successive looks into a progress line (bar, jobs by status, frames/s
over the last looks, ETA) and into one line per failure as it happens.
"""

from __future__ import annotations

import time
from collections import deque

from roboflow_distributed.records import UnitStatus
from roboflow_distributed.views import BatchDetail, Job

__all__ = ["BatchWatch"]

_WINDOW_S = 30.0  # frames/s and jobs/s are measured over about this long


def _duration(seconds: float) -> str:
    minutes, sec = divmod(max(0, int(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{sec:02d}" if hours else f"{minutes:02d}:{sec:02d}"


class BatchWatch:
    """The rates, ETA and new failures of a batch across looks at it."""

    def __init__(self) -> None:
        self._looks: deque[tuple[float, int, int]] = deque()  # (time, frames done, jobs finished)
        self._reported: set[tuple[str, int, int, str | None]] = set()

    def failures(self, jobs: list[Job]) -> list[str]:
        """A line for each failed attempt or dead job not reported before."""
        lines = []
        for job in jobs:
            if job.error is None or job.status is UnitStatus.COMPLETE:
                continue
            key = (job.id, job.attempts, job.lost, job.error)
            if key in self._reported:
                continue
            self._reported.add(key)
            if job.status is UnitStatus.DEAD:
                what = "dead"
            else:
                what = f"attempt {max(job.attempts, job.lost)} failed, will retry"
            lines.append(f"{what}: {job.source} ({job.id}): {job.error}")
        return lines

    def line(self, detail: BatchDetail, now: float | None = None) -> str:
        """The progress line after a look: bar, jobs by status, frames, frames/s and ETA."""
        now = time.monotonic() if now is None else now
        jobs = detail.batch.jobs
        self._looks.append((now, detail.frames_done, jobs.finished))
        while len(self._looks) > 2 and now - self._looks[1][0] >= _WINDOW_S:
            self._looks.popleft()
        first_t, first_frames, first_jobs = self._looks[0]
        span = now - first_t
        fps = (detail.frames_done - first_frames) / span if span > 0 else 0.0
        jobs_per_s = (jobs.finished - first_jobs) / span if span > 0 else 0.0
        frac = jobs.finished / jobs.total if jobs.total else 0.0
        bar = "#" * int(frac * 24) + "." * (24 - int(frac * 24))
        counts = ", ".join(
            f"{n} {name}"
            for name, n in (
                ("running", jobs.processing),
                ("pending", jobs.pending),
                ("dead", jobs.dead),
                ("cancelled", jobs.cancelled),
            )
            if n
        )
        return (
            f"{detail.batch.phase} [{bar}] {jobs.finished}/{jobs.total} jobs"
            + (f" ({counts})" if counts else "")
            + f" {detail.frames_done:,} frames {fps:,.0f} fps ETA {self._eta(detail, fps, jobs_per_s)}"
        )

    @staticmethod
    def _eta(detail: BatchDetail, fps: float, jobs_per_s: float) -> str:
        jobs = detail.batch.jobs
        if detail.batch.phase.terminal:
            return _duration(0)
        if jobs.pending == 0 and fps > 0:  # every unfinished job knows its frames
            return _duration((detail.frames_total - detail.frames_done) / fps)
        if jobs_per_s > 0:
            return _duration((jobs.total - jobs.finished) / jobs_per_s)
        return "--:--"
