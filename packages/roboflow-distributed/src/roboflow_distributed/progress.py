"""One claim's progress in the store: checkpoints, closed segments uploaded as they close, resume.

While a worker converts a unit, the episode is staged in segments (``Settings.segment_frames``).
Each closed segment is uploaded to the claim's staging prefix (its files, then its manifest) and
the checkpoint records how many segments are there. A later claim of the unit (after a crash or a
kill) downloads them and resumes the conversion after the last one instead of starting over.
Every checkpoint write compares the unit's version, so a claim that was taken over stops at its
next checkpoint instead of overwriting the new owner's. Progress (frames staged, bytes moved) is
marked on the claim's :class:`~roboflow_distributed.watchdog.Attempt`, and nothing is uploaded or
written once the attempt is abandoned.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from roboflow_core import CoordinationError
from roboflow_dataset.lerobot import ClosedSegment
from roboflow_dataset.lerobot.staging import MANIFEST
from roboflow_distributed import keys
from roboflow_distributed.metrics import OUTPUT_BYTES
from roboflow_distributed.records import Checkpoint, Versioned, WorkUnit, encode, read
from roboflow_distributed.settings import Settings
from roboflow_distributed.staging import stage_prefix
from roboflow_distributed.store import Compare, Store
from roboflow_distributed.watchdog import Attempt
from roboflow_pipeline import RecordingPlan
from roboflow_storage import Storage, download_tree, upload_file

__all__ = ["ClaimLost", "UnitProgress"]

log = logging.getLogger("roboflow.worker")


class ClaimLost(Exception):
    """The unit was taken over (the reaper thought this worker dead): drop this claim's work."""


class UnitProgress:
    """The checkpoints and staged uploads of one claim of a unit.

    Args:
        store: The coordination store.
        pod: This worker's pod id.
        unit: The claimed unit, at the version the claim wrote.
        staging: The batch's staging area.
        settings: Checkpoint intervals.
        attempt: The attempt's watchdog: marked on progress, checked before every write.
    """

    def __init__(
        self,
        store: Store,
        pod: str,
        unit: Versioned[WorkUnit],
        staging: Storage,
        settings: Settings,
        attempt: Attempt,
    ) -> None:
        self.store = store
        self.pod = pod
        self.unit = unit
        self.staging = staging
        self.settings = settings
        self.attempt = attempt
        rec = unit.record
        self.prefix = stage_prefix(rec.batch, rec.id, rec.claims)
        self.key = keys.checkpoint(rec.batch, rec.id)
        self.done = 0
        self.total = 0
        self.segments = 0
        self.segment_end = 0
        self.uploaded: set[str] = set()
        self._saved_frames = 0
        self._saved_at = time.monotonic()

    def finished(self) -> tuple[str, int] | None:
        """``(prefix, frames)`` of a staged episode an earlier claim uploaded whole, if any."""
        saved = read(self.store, self.key, Checkpoint)
        if saved is None or saved.record.staged is None:
            return None
        if not self.staging.exists(f"{saved.record.staged}/{MANIFEST}"):
            return None
        log.info("unit %s: reusing the episode staged by claim %d", self.unit.record.id, saved.record.claim)
        return saved.record.staged, saved.record.frames_done

    def restore(self, episode_dir: Path) -> bool:
        """Download the closed segments an earlier claim uploaded; whether there were any."""
        saved = read(self.store, self.key, Checkpoint)
        if saved is None or saved.record.prefix is None or saved.record.segments == 0:
            return False
        segments = f"{saved.record.prefix}/segments"
        self.attempt.mark(download_tree(self.staging, segments, episode_dir / "segments"))
        log.info(
            "unit %s: resuming after %d segment(s), %d frames, of claim %d",
            self.unit.record.id,
            saved.record.segments,
            saved.record.frames_done,
            saved.record.claim,
        )
        return True

    # --- callbacks of convert_recording -----------------------------------------------------

    def planned(self, plan: RecordingPlan) -> None:
        self.total = plan.plan.n_frames

    def read(self, n: int) -> None:
        """Progress of pass 1 (``n`` messages read, no frame yet): mark it."""
        self.attempt.mark(n)

    def frames(self, n: int) -> None:
        """Progress: mark it, and checkpoint now and then."""
        self.attempt.mark(n)
        self.done += n
        if (
            self.done - self._saved_frames >= self.settings.checkpoint_interval_frames
            or time.monotonic() - self._saved_at >= self.settings.checkpoint_interval_secs
        ):
            try:
                self._save(staged=None)
            except CoordinationError as err:  # progress only: the conversion goes on
                log.warning("checkpoint of %s not saved: %s", self.unit.record.id, err)

    def segment(self, segment: ClosedSegment, episode_dir: Path) -> None:
        """Upload a closed segment (files, then its manifest) and record it in the checkpoint."""
        for name in (*segment.files, segment.manifest):
            self._upload(name, episode_dir)
        self.segments = segment.index + 1
        self.segment_end = segment.end
        self._save(staged=None)

    def finish(self, directory: Path, frames: int) -> str:
        """Upload what is not uploaded yet of the stage in ``directory`` (one episode, or one per
        skill), its manifest last; the staged prefix."""
        files = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
        for name in [f for f in files if f != MANIFEST and f not in self.uploaded] + [MANIFEST]:
            self._upload(name, directory)
        self.done = frames
        self._save(staged=self.prefix)
        return self.prefix

    def _upload(self, name: str, root: Path) -> None:
        self.attempt.check()
        path = root / name
        upload_file(self.staging, f"{self.prefix}/{name}", path)
        self.uploaded.add(name)
        OUTPUT_BYTES.add(path.stat().st_size)
        self.attempt.mark(path.stat().st_size)

    def _save(self, *, staged: str | None) -> None:
        self.attempt.check()
        rec = self.unit.record
        record = Checkpoint(
            unit=rec.id,
            pod=self.pod,
            claim=rec.claims,
            frames_done=max(self.done, self.segment_end),
            frames_total=self.total,
            prefix=self.prefix if self.segments else None,
            segments=self.segments,
            staged=staged,
            updated_at=time.time(),
        )
        ukey = keys.unit(rec.batch, rec.id)
        if not self.store.txn([Compare(ukey, self.unit.version)], {self.key: encode(record)}):
            raise ClaimLost
        self._saved_frames, self._saved_at = self.done, time.monotonic()
