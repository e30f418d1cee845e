"""A writer lock on a dataset, kept as an object next to its files (any store, local or remote).

Two conversions appending to one dataset at once would both number their new files and episodes
from the same metadata and overwrite each other. The lock is a create-only put of
``.roboflow-lock`` (``If-None-Match: *`` on S3, an exclusive create locally): exactly one writer
gets it. A lock left by a writer that died is broken only when that is safe: its process is known
dead (same host, pid gone), or the caller vouches for it (the distributed finalizer holds the
dataset's lease in the coordination store, so no other finalizer can be writing).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Self

from roboflow_core import DatasetError
from roboflow_storage import ObjectExistsError, ObjectNotFoundError, Storage

__all__ = ["LOCK_KEY", "DatasetLock", "LockInfo"]

LOCK_KEY = ".roboflow-lock"


@dataclass(frozen=True, slots=True)
class LockInfo:
    """Who holds a dataset's lock."""

    owner: str
    host: str
    pid: int
    since: float


def _process_gone(info: LockInfo) -> bool:
    if info.host != socket.gethostname():
        return False
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class DatasetLock:
    """Hold the writer lock of the dataset in ``storage`` while the ``with`` body runs.

    Args:
        storage: The dataset's root.
        owner: Who writes (shown to a writer that finds the dataset locked).
        breakable: Decides whether a found lock may be taken over (besides a dead local process).

    Raises:
        DatasetError: Another writer holds the lock (names it and the lock's URL).
    """

    def __init__(
        self, storage: Storage, owner: str, *, breakable: Callable[[LockInfo], bool] | None = None
    ) -> None:
        self.storage = storage
        self.info = LockInfo(owner, socket.gethostname(), os.getpid(), time.time())
        self.breakable = breakable or (lambda _info: False)

    def __enter__(self) -> Self:
        payload = json.dumps(asdict(self.info)).encode()
        for _ in range(3):
            try:
                self.storage.put(LOCK_KEY, payload, mode="create")
                return self
            except ObjectExistsError:
                held = self._read()
                if held is None:
                    continue  # released meanwhile: try again
                if not (_process_gone(held) or self.breakable(held)):
                    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(held.since))
                    raise DatasetError(
                        f"the dataset is being written by {held.owner} (host {held.host}, pid "
                        f"{held.pid}) since {since}; if no such conversion is running, delete "
                        f"{self.storage.url_of(LOCK_KEY)}",
                        path=self.storage.url,
                    ) from None
                self.storage.delete(LOCK_KEY)
        raise DatasetError("could not take the dataset's writer lock (contended)", path=self.storage.url)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        held = self._read()
        if held == self.info:
            self.storage.delete(LOCK_KEY)

    def _read(self) -> LockInfo | None:
        try:
            raw = json.loads(self.storage.get(LOCK_KEY))
            return LockInfo(str(raw["owner"]), str(raw["host"]), int(raw["pid"]), float(raw["since"]))
        except ObjectNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return LockInfo("an unreadable lock", "?", -1, 0.0)
