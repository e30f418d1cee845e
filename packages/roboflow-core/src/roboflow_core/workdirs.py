"""Private working directories: one per process, cleaned up even after a kill.

A :class:`PrivateDir` is a directory only this process uses, ``ROOT/<prefix><random>``, created
0700. Its process holds an exclusive ``flock`` on the directory itself for as long as it is
open; it is removed by :meth:`PrivateDir.close` or at interpreter exit. A process killed with
SIGKILL cannot remove its own, but the kernel drops its lock: creating a :class:`PrivateDir`
first removes every ``ROOT/<prefix>*`` directory of this user whose lock is free. So each
process cleans up what killed processes left (a restarted pod, its predecessor's) at start.

A directory becomes visible under its final name only once its lock is held (it is set up under
a hidden name and renamed), so a sweep never mistakes a directory being created for a leftover.
Nothing is followed through a symbolic link, and only directories owned by this user are touched.

:func:`process_workdir` is the process's directory for scratch work (``$TMPDIR/roboflow-work-*``):
episodes being converted, staged episodes being merged, datasets being published.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
import threading
import time
import weakref
from pathlib import Path

__all__ = ["WORK_PREFIX", "PrivateDir", "process_workdir", "sweep_leftovers"]

WORK_PREFIX = "roboflow-work-"
"""Name prefix of the per-process work directories in the temp directory."""
_SETUP_GRACE_S = 60.0
"""A hidden directory still being set up is a leftover only once it is this old."""

_work: tuple[int, PrivateDir] | None = None
_work_lock = threading.Lock()


class PrivateDir:
    """A new directory under ``root`` that only this process uses (see the module docstring).

    Args:
        root: Where to create it (created 0700 when missing).
        prefix: Its name prefix; leftovers with this prefix are swept first.

    Raises:
        OSError: ``root`` cannot be created or written.
    """

    def __init__(self, root: str | os.PathLike[str], prefix: str) -> None:
        root = Path(root)
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        sweep_leftovers(root, prefix)
        setup = Path(tempfile.mkdtemp(dir=root, prefix=f".{prefix}"))  # 0700, a fresh name
        fd = -1
        try:
            fd = _open_dir(setup)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.path = root / setup.name[1:]
            setup.rename(self.path)  # the lock goes with the directory
        except BaseException:
            shutil.rmtree(setup, ignore_errors=True)
            if fd >= 0:
                os.close(fd)
            raise
        self._finalizer = weakref.finalize(self, _remove, self.path, fd, os.getpid())

    def close(self) -> None:
        """Remove the directory and release its lock. Safe to call twice."""
        self._finalizer()

    def __enter__(self) -> PrivateDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PrivateDir({str(self.path)!r})"


def sweep_leftovers(root: str | os.PathLike[str], prefix: str) -> list[Path]:
    """Remove the ``root/<prefix>*`` directories of this user whose process is gone; the removed.

    A directory whose lock is held (its process runs) is kept; so is one still being set up.
    """
    removed = []
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    for name in names:
        hidden = name.startswith(f".{prefix}")
        if not (name.startswith(prefix) or hidden):
            continue
        path = Path(root, name)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        if hidden and time.time() - info.st_mtime < _SETUP_GRACE_S:
            continue
        if _remove_if_unlocked(path):
            removed.append(path)
    return removed


def process_workdir() -> Path:
    """This process's scratch directory, ``$TMPDIR/roboflow-work-*`` (created on first use).

    The first call sweeps the work directories that killed processes left in the temp directory.
    """
    global _work
    with _work_lock:
        if _work is None or _work[0] != os.getpid():  # a forked child makes its own
            _work = (os.getpid(), PrivateDir(tempfile.gettempdir(), WORK_PREFIX))
        return _work[1].path


def _open_dir(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def _remove_if_unlocked(path: Path) -> bool:
    try:
        fd = _open_dir(path)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its process is alive
        shutil.rmtree(path, ignore_errors=True)
        return True
    finally:
        os.close(fd)


def _remove(path: Path, fd: int, pid: int) -> None:
    if os.getpid() != pid:
        return  # a forked child: the directory is its parent's
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.close(fd)
