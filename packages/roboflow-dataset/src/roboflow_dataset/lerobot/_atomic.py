"""Atomic, durable file replacement: readers see the old file or the new one, never half of one,
and once a replacement returns it survives a power loss (the file and the rename are fsynced)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from roboflow_core.errors import DatasetError

TMP_SUFFIX = ".tmp"
"""Suffix of the temporary files; leftovers from a crash can be removed by it."""


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` through ``write(temp_path)``, then move the result into place.

    Args:
        path: Final location.
        write: Writes the whole file to the temporary path it is given.

    Raises:
        DatasetError: Writing or renaming failed; the temporary file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}{TMP_SUFFIX}")
    try:
        write(temp)
        with temp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, path)
        fsync_dir(path.parent)  # the rename itself
    except OSError as err:
        temp.unlink(missing_ok=True)
        raise DatasetError(f"cannot write file: {err.strerror or err}", path=str(path)) from err
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def fsync_dir(path: Path) -> None:
    """Flush ``path``'s entries (files created, renamed or removed in it) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_durable(root: Path, files: Iterable[Path]) -> None:
    """fsync ``files`` and every directory from each one's up to ``root``, so they survive a crash.

    Raises:
        DatasetError: A file or directory cannot be flushed.
    """
    directories: set[Path] = set()
    for path in files:
        try:
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        except OSError as err:
            raise DatasetError(f"cannot flush file to disk: {err.strerror or err}", path=str(path)) from err
        directories.update(p for p in path.parents if p == root or root in p.parents)
    for directory in sorted(directories, key=lambda p: len(p.parts), reverse=True):
        try:
            fsync_dir(directory)
        except OSError as err:
            raise DatasetError(
                f"cannot flush directory to disk: {err.strerror or err}", path=str(directory)
            ) from err


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    atomic_write(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path, value: Any) -> None:
    """Replace ``path`` with ``value`` as indented JSON atomically."""
    atomic_write_text(path, json.dumps(value, indent=4) + "\n")


def atomic_write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace ``path`` with one JSON object per line atomically."""
    atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))
