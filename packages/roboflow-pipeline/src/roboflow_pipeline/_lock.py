"""A writer lock on a dataset, kept as an object next to its files (any store, local or remote).

Two conversions appending to one dataset at once would both number their new files and episodes
from the same metadata and overwrite each other. The lock is a create-only put of
``.roboflow-lock`` (``If-None-Match: *`` on S3, an exclusive create locally): exactly one writer
gets it. A lock left by a writer that died is broken only when that is safe:

* in an object store the lock is a lease: its holder renews it every ``ttl / 3`` by a
  conditional replace (``If-Match`` its own etag), and a lock not renewed for ``ttl`` is taken
  over by a conditional replace too, so two writers breaking one stale lock cannot both win. A
  holder whose lock was taken over learns it at its next renewal, and :meth:`DatasetLock.check`
  (called before the dataset's ``meta/info.json`` is written) then stops it;
* in a local directory (no conditional replace) its process is known dead (same host, pid gone);
  it is replaced (by a rename, under ``flock`` on the found file) only while it still is that
  dead lock, so of two writers breaking it only one wins;
* or it was taken with a lower fencing token: the distributed finalizer writes under a lease on
  the dataset in the coordination store whose token grows with every new holder, so a lock with a
  lower token is a former holder's, which lost its lease and stops before its next write (its
  lease checks run before every step). A lock without a token (``roboflow convert``) is never
  taken over that way, and neither is one with the same or a higher token.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Self

from roboflow_core import DatasetError, StorageError
from roboflow_core.env import env_float
from roboflow_storage import ObjectChangedError, ObjectExistsError, ObjectNotFoundError, Storage

__all__ = ["LOCK_KEY", "LOCK_TTL_ENV", "DatasetLock", "LockInfo"]

LOCK_KEY = ".roboflow-lock"
LOCK_TTL_ENV = "ROBOFLOW_DATASET_LOCK_TTL_SECS"
"""How long a lock in an object store outlives its last renewal (default 120 s)."""

log = logging.getLogger("roboflow.lock")


@dataclass(frozen=True, slots=True)
class LockInfo:
    """Who holds a dataset's lock, and until when (``expires``: 0 for a lock that is not renewed)."""

    owner: str
    host: str
    pid: int
    since: float
    expires: float = 0.0
    fencing: int = 0


def _host() -> str:
    """This machine's host name, as ``socket.gethostname()`` gives it (without importing socket)."""
    return os.uname().nodename


def _process_gone(info: LockInfo) -> bool:
    if info.host != _host():
        return False
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _expired(info: LockInfo) -> bool:
    return 0 < info.expires < time.time()


def _encode(info: LockInfo) -> bytes:
    return json.dumps(asdict(info)).encode()


class DatasetLock:
    """Hold the writer lock of the dataset in ``storage`` while the ``with`` body runs.

    Args:
        storage: The dataset's root.
        owner: Who writes (shown to a writer that finds the dataset locked).
        fencing: The writer's fencing token (0: none); a found lock with a lower non-zero token
            is superseded and taken over.
        ttl: Lease length in an object store (renewed every third of it); default
            ``ROBOFLOW_DATASET_LOCK_TTL_SECS`` or 120 s.

    Raises:
        ConfigError: ``ROBOFLOW_DATASET_LOCK_TTL_SECS`` is not a positive number.
        DatasetError: Another writer holds the lock (names it and the lock's URL).
    """

    def __init__(
        self,
        storage: Storage,
        owner: str,
        *,
        fencing: int = 0,
        ttl: float | None = None,
    ) -> None:
        self.storage = storage
        self.ttl = env_float(LOCK_TTL_ENV, 120.0) if ttl is None else ttl
        self.info = LockInfo(owner, _host(), os.getpid(), time.time(), fencing=fencing)
        self._etag: str | None = None
        self._lost: str | None = None
        self._expires = 0.0  # of the lease as last written (0: not leased)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> Self:
        leased = self.storage.can_replace
        for _ in range(3):
            try:
                self._write(leased, replacing=None)
                break
            except ObjectExistsError:
                held, etag = self._read()
                if held is None:
                    continue  # released meanwhile: try again
                if not (_expired(held) or _process_gone(held) or self._supersedes(held)):
                    raise self._locked(held) from None
                if self._take_over(held, etag, leased):
                    break
        else:
            raise DatasetError("could not take the dataset's writer lock (contended)", path=self.storage.url)
        if leased:
            self._renewer = threading.Thread(target=self._renew, name="dataset-lock", daemon=True)
            self._renewer.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        held, _ = self._read()
        if held is not None and replace(held, expires=0.0) == self.info:  # still ours
            self.storage.delete(LOCK_KEY)

    def _supersedes(self, held: LockInfo) -> bool:
        return 0 < held.fencing < self.info.fencing

    def check(self) -> None:
        """Raise if the lock may be another writer's now: taken over, or not renewed for a ``ttl``.

        Raises:
            DatasetError: The lock is no longer this writer's: it must not write the metadata.
        """
        if self._lost is None and 0 < self._expires < time.time():
            self._lost = f"it could not be renewed for {self.ttl:g} s and may have been taken over"
        if self._lost is None and not self.storage.can_replace:  # a local lock has no renewal to notice
            held, _ = self._read()
            if held is None or held != self.info:
                self._lost = f"it is now {held.owner if held else 'gone'}'s"
        if self._lost is not None:
            raise DatasetError(
                f"lost the dataset's writer lock ({self._lost}); nothing more is written",
                path=self.storage.url,
            )

    def _write(self, leased: bool, *, replacing: str | None) -> None:
        """Write our lock: create-only, or over the lock whose etag is ``replacing``. A leased
        lock runs ``ttl`` from now.

        Raises:
            ObjectExistsError: Creating, and a lock exists.
            ObjectChangedError: Replacing, and the lock is no longer the one with that etag.
        """
        info = replace(self.info, expires=time.time() + self.ttl) if leased else self.info
        payload = _encode(info)
        if replacing is None:
            self._etag = self.storage.put(LOCK_KEY, payload, mode="create")
        else:
            self._etag = self.storage.replace(LOCK_KEY, payload, etag=replacing)
        self._expires = info.expires

    def _take_over(self, held: LockInfo, etag: str | None, leased: bool) -> bool:
        """Replace the breakable lock ``held`` by ours; whether we now hold it (else look again)."""
        if not leased:
            return self._rewrite_local(held)
        if etag is None:  # an unreadable lock: nothing to compare against
            self.storage.delete(LOCK_KEY)
            return False
        try:
            self._write(leased, replacing=etag)
        except ObjectChangedError:
            return False  # someone else renewed or took it meanwhile: look again
        return True

    def _rewrite_local(self, held: LockInfo) -> bool:
        """Replace a local lock file by ours, only while it still is ``held``.

        The check and the replace run under ``flock`` on the found file, and the replace is a
        rename (readers see the old or the new lock, never a partial one): a second writer
        breaking the same lock gets the ``flock`` after the rename, sees the path lead to another
        file, and looks again.
        """
        path = Path(self.storage.location.prefix, LOCK_KEY)
        try:
            with path.open("rb") as found:
                fcntl.flock(found, fcntl.LOCK_EX)
                if os.fstat(found.fileno()).st_ino != path.stat().st_ino or _parse(found.read()) != held:
                    return False
                staged = path.with_name(f"{LOCK_KEY}.{os.getpid()}.{threading.get_ident()}")
                staged.write_bytes(_encode(self.info))
                os.replace(staged, path)
                return True
        except FileNotFoundError:
            return False

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            if self._etag is None:
                self._lost = "the store gives no etag to renew it by"
                return
            try:
                self._write(True, replacing=self._etag)
            except ObjectChangedError:
                self._lost = "another writer took it over"
                log.error("%s: %s", self.storage.url_of(LOCK_KEY), self._lost)
                return
            except StorageError as err:  # the lease still runs: try again at the next tick
                log.warning("could not renew %s: %s", self.storage.url_of(LOCK_KEY), err)

    def _locked(self, held: LockInfo) -> DatasetError:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(held.since))
        until = ""
        if held.expires:
            expires = time.strftime("%H:%M:%S", time.localtime(held.expires))
            until = f" (its lock expires at {expires} unless renewed)"
        return DatasetError(
            f"the dataset is being written by {held.owner} (host {held.host}, pid {held.pid}) since "
            f"{since}{until}; if no such conversion is running, delete {self.storage.url_of(LOCK_KEY)}",
            path=self.storage.url,
        )

    def _read(self) -> tuple[LockInfo | None, str | None]:
        """The lock found (``None`` when there is none) and its etag."""
        try:
            raw, etag = self.storage.get_versioned(LOCK_KEY)
        except ObjectNotFoundError:
            return None, None
        return _parse(raw), etag


def _parse(raw: bytes) -> LockInfo:
    try:
        data = json.loads(raw)
        return LockInfo(
            str(data["owner"]),
            str(data["host"]),
            int(data["pid"]),
            float(data["since"]),
            float(data.get("expires", 0.0)),
            int(data.get("fencing", 0)),
        )
    except (ValueError, KeyError, TypeError):
        return LockInfo("an unreadable lock", "?", -1, 0.0)
