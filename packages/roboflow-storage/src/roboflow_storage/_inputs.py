"""Turn the inputs a user names (paths, directories, globs, ``file://`` URLs) into recordings."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

from roboflow_core import StorageError

_GLOB_CHARS = frozenset("*?[")
RECORDING_SUFFIXES = (".bag", ".mcap", ".db3")


def local_path(url: str | os.PathLike[str]) -> Path:
    """The local path of a plain path or ``file://`` URL.

    Raises:
        StorageError: The URL names a scheme that is not a local file.
    """
    text = os.fspath(url)
    parsed = urlparse(text)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:
        raise StorageError(
            f"scheme {parsed.scheme!r} is not supported yet; use a local path or file:// URL", url=text
        )
    return Path(text)


def _is_recording(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in RECORDING_SUFFIXES


def resolve_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand the inputs of a conversion into recordings, in a stable order.

    A file is one recording; a directory is one recording (a ROS2 bag directory, possibly split
    over several storage files); a glob expands to the recordings it matches, sorted. Duplicates
    are dropped, first occurrence kept.

    Raises:
        StorageError: An input does not exist or a glob matches nothing.
    """
    found: list[Path] = []
    for item in inputs:
        path = local_path(item)
        text = str(path)
        if _GLOB_CHARS & set(text):
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            matches = [m for m in matches if _is_recording(m)]
            if not matches:
                raise StorageError(
                    "the pattern matches no recording (.bag, .mcap, .db3 or a bag directory)",
                    url=os.fspath(item),
                )
            found.extend(matches)
        elif path.exists():
            found.append(path)
        else:
            raise StorageError("no such file or directory", url=os.fspath(item))
    unique: dict[Path, None] = {}
    for path in found:
        unique.setdefault(path, None)
    return list(unique)
