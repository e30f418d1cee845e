"""Staged episodes in the output's staging area: uploaded by workers, downloaded by the finalizer.

A worker stages each claim under its own prefix ``{batch}/{unit}/claim-{n}/`` (closed segments as
they close, see :mod:`roboflow_distributed.progress`) and uploads the episode manifest last, so a
staged episode is complete exactly when its manifest exists, and two claims of one unit (a worker
thought lost that still finishes) never mix files.
"""

from __future__ import annotations

from pathlib import Path

from roboflow_dataset.lerobot import StagedEpisode
from roboflow_pipeline import load_staged
from roboflow_storage import Storage, download_tree

__all__ = ["download_staged", "remove_batch", "stage_prefix"]


def stage_prefix(batch: str, unit: str, claim: int) -> str:
    """Where claim number ``claim`` of a unit stages its episode."""
    return f"{batch}/{unit}/claim-{claim:03d}"


def download_staged(storage: Storage, prefix: str, target: Path) -> list[StagedEpisode]:
    """Download the stage at ``prefix`` into ``target`` and load its episode(s) (one per skill mark
    when the batch has an annotation).

    Raises:
        DatasetError: It is incomplete (no manifest) or names missing files.
        StorageError: A download failed.
    """
    download_tree(storage, prefix, target)
    return load_staged(target)


def remove_batch(storage: Storage, batch: str) -> None:
    """Delete every staged object of a batch (after its merge)."""
    for info in list(storage.list(batch)):
        storage.delete(info.key)
