"""Private per-process directories: 0700, removed on close and at exit, and what killed processes
left is swept by the next process, while a live process's directory is kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from roboflow_core.workdirs import WORK_PREFIX, PrivateDir, process_workdir, sweep_leftovers

_HOLDER = textwrap.dedent(
    """
    import sys, time
    from roboflow_core.workdirs import PrivateDir
    held = PrivateDir(sys.argv[1], "rf-test-")
    (held.path / "work").write_text("x")
    print(held.path, flush=True)
    if sys.argv[2] == "wait":
        time.sleep(120)
    """
)


def _holder(root: Path, mode: str) -> tuple[subprocess.Popen[str], Path]:
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(root), mode], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    with child.stdout:
        return child, Path(child.stdout.readline().strip())


def test_private_dir_is_0700_and_removed_on_close(tmp_path: Path) -> None:
    with PrivateDir(tmp_path / "root", "rf-test-") as private:
        assert private.path.parent == tmp_path / "root" and private.path.name.startswith("rf-test-")
        assert private.path.stat().st_mode & 0o777 == 0o700
        (private.path / "file").write_text("x")
    assert not private.path.exists()
    private.close()  # twice is fine


def test_a_killed_process_leaves_a_directory_the_next_one_sweeps(tmp_path: Path) -> None:
    live, live_dir = _holder(tmp_path, "wait")
    killed, killed_dir = _holder(tmp_path, "wait")
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(30)
        assert (killed_dir / "work").exists(), "SIGKILL leaves it behind"
        elsewhere = tmp_path / "not-ours"
        elsewhere.mkdir()
        (tmp_path / "rf-test-link").symlink_to(elsewhere)  # never followed
        (tmp_path / "rf-test-file").write_text("a file, not a directory")
        with PrivateDir(tmp_path, "rf-test-") as mine:
            assert not killed_dir.exists()
            assert (live_dir / "work").exists(), "a running process's directory is kept"
            assert mine.path.exists() and elsewhere.is_dir()
            assert sweep_leftovers(tmp_path, "rf-test-") == []  # mine and the live one are locked
    finally:
        live.kill()
        live.wait(30)
    assert sweep_leftovers(tmp_path, "rf-test-") == [live_dir]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-ours", "rf-test-file", "rf-test-link"]


def test_a_process_removes_its_directory_when_it_exits(tmp_path: Path) -> None:
    child, path = _holder(tmp_path, "exit")
    assert child.wait(30) == 0
    assert not path.exists()


def test_process_workdir_is_one_per_process_in_the_temp_dir() -> None:
    work = process_workdir()
    assert work == process_workdir() and work.is_dir()
    assert work.name.startswith(WORK_PREFIX) and work.stat().st_mode & 0o777 == 0o700
