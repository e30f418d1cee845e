"""The CPUs this process's encoders may use: its CPU affinity, a container's CPU limit (its cgroup's
CPU quota), and its share when several conversion processes run at once (``convert -j N``).

Neither the affinity nor ``os.cpu_count`` knows a container's limit: a pod limited to 2 CPUs on a
64-core node would otherwise size every SVT-AV1 encoder for 64 cores.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["available_cpus", "cgroup_cpu_limit", "share_cpus"]

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_processes = 1


def share_cpus(processes: int) -> None:
    """This process is one of ``processes`` converting at once (each a ``convert -j N`` worker):
    :func:`available_cpus` gives it its part of the CPUs from now on."""
    global _processes
    _processes = max(1, processes)


def available_cpus() -> int:
    """The CPUs this process may use (at least 1): its affinity (Linux; elsewhere every CPU), at
    most its cgroup's CPU limit rounded up, divided among the processes set by :func:`share_cpus`."""
    affinity = getattr(os, "sched_getaffinity", None)
    cpus = len(affinity(0)) if affinity is not None else os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus // _processes)


def cgroup_cpu_limit(root: Path = _CGROUP_ROOT, membership: str | None = None) -> float | None:
    """CPUs' worth of time this process's cgroup and its ancestors allow (the smallest quota /
    period), or ``None`` when none is limited or the cgroup files cannot be read.

    Args:
        root: Where the cgroup file systems are mounted.
        membership: ``/proc/self/cgroup``'s text (read when ``None``): cgroup v2's ``0::/path``
            line, else cgroup v1's ``cpu`` controller line.
    """
    if membership is None:
        try:
            membership = Path("/proc/self/cgroup").read_text(encoding="utf-8")
        except OSError:
            return None
    limits = []
    for line in membership.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            limits += [_v2_limit(d) for d in _with_ancestors(root, path)]
        elif "cpu" in controllers.split(","):
            mount = root / controllers if (root / controllers).is_dir() else root / "cpu"
            limits += [_v1_limit(d) for d in _with_ancestors(mount, path)]
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def _with_ancestors(mount: Path, path: str) -> list[Path]:
    """The cgroup directory of ``path`` under ``mount`` and its ancestors up to the mount."""
    directory = mount / path.strip("/")
    return [directory, *(p for p in directory.parents if p.is_relative_to(mount))]


def _v2_limit(directory: Path) -> float | None:
    """``cpu.max``: ``quota period``, or ``max period`` when unlimited."""
    try:
        quota, period = (directory / "cpu.max").read_text(encoding="utf-8").split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_limit(directory: Path) -> float | None:
    """``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``; a quota of -1 is unlimited."""
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text(encoding="utf-8"))
        period = int((directory / "cpu.cfs_period_us").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None
