"""The encoders' CPU budget: affinity, a cgroup's CPU limit (a container's), a share of ``convert -j N``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from roboflow_media import available_cpus, cgroup_cpu_limit, cores_per_encoder, share_cpus


def _write(path: Path, **files: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name.replace("_", ".", 1)).write_text(text, encoding="utf-8")


def test_cgroup_v2_limit_is_the_smallest_quota_of_the_group_and_its_ancestors(tmp_path: Path) -> None:
    _write(tmp_path / "kubepods", cpu_max="400000 100000\n")
    _write(tmp_path / "kubepods" / "pod1", cpu_max="max 100000\n")
    _write(tmp_path / "kubepods" / "pod1" / "ctr", cpu_max="150000 100000\n")
    assert cgroup_cpu_limit(tmp_path, "0::/kubepods/pod1/ctr\n") == 1.5
    assert cgroup_cpu_limit(tmp_path, "0::/kubepods/pod1\n") == 4.0  # the parent's limit applies
    _write(tmp_path, cpu_max="max 100000\n")
    assert cgroup_cpu_limit(tmp_path, "0::/\n") is None  # unlimited


def test_cgroup_v1_limit_reads_the_cfs_quota_of_the_cpu_controller(tmp_path: Path) -> None:
    _write(tmp_path / "cpu,cpuacct" / "docker" / "abc", cpu_cfs_quota_us="250000", cpu_cfs_period_us="100000")
    _write(tmp_path / "cpu,cpuacct" / "docker", cpu_cfs_quota_us="-1", cpu_cfs_period_us="100000")
    membership = "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n"
    assert cgroup_cpu_limit(tmp_path, membership) == 2.5
    assert cgroup_cpu_limit(tmp_path, "3:cpu,cpuacct:/docker\n") is None  # -1: unlimited
    assert cgroup_cpu_limit(tmp_path / "missing", membership) is None  # nothing readable: no limit


@pytest.fixture
def shared() -> Iterator[None]:
    yield
    share_cpus(1)


@pytest.mark.usefixtures("shared")
def test_a_share_of_a_pool_divides_the_cpus() -> None:
    alone = available_cpus()
    assert 1 <= alone <= len(os.sched_getaffinity(0))
    share_cpus(2)
    assert available_cpus() == max(1, alone // 2)
    assert cores_per_encoder(2) == max(1, alone // 4)
    share_cpus(1)
    assert available_cpus() == alone


_CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")
_PROBE = (
    "import json; from roboflow_media import available_cpus, cgroup_cpu_limit, cores_per_encoder; "
    "print(json.dumps([cgroup_cpu_limit(), available_cpus(), cores_per_encoder(1)]))"
)


@pytest.fixture
def one_cpu_cgroup() -> Iterator[Path]:
    """A real cgroup v1 CPU group limited to one CPU's time (needs root and a writable controller)."""
    writable = _CGROUP_V1_CPU.is_dir() and os.access(_CGROUP_V1_CPU, os.W_OK)
    if not writable or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("no writable cgroup v1 cpu controller (root), or a single CPU: a limit shows nothing")
    group = _CGROUP_V1_CPU / f"roboflow-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text("100000")
        yield group
    finally:
        group.rmdir()  # its process has exited: the group is empty


def test_a_process_in_a_cpu_limited_cgroup_sizes_its_encoders_for_the_limit(one_cpu_cgroup: Path) -> None:
    """A child moved into a cgroup limited to one CPU (as a pod with ``limits.cpu: 1``) sees the
    limit, though its affinity still holds every CPU."""
    tasks = one_cpu_cgroup / "cgroup.procs"

    def join() -> None:
        tasks.write_text(str(os.getpid()))

    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, preexec_fn=join, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [1.0, 1, 1]
