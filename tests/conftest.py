"""Session-wide test hygiene: the suite's temporary files stay in pytest's own temp directory.

The code removes its scratch directories itself (``roboflow_core.workdirs``): at process exit, and,
for processes the chaos tests SIGKILL, when the next process makes its own. The last pods killed
in a session have no next process, so the session sweeps their directories at its end, as a
restarted pod would.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from roboflow_core.workdirs import WORK_PREFIX, sweep_leftovers
from roboflow_storage._cache import SPOOL_PREFIX


@pytest.fixture(scope="session", autouse=True)
def session_temp_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``TMPDIR`` of this process and of every process it starts, inside pytest's temp directory."""
    directory = tmp_path_factory.mktemp("tmpdir")
    patch = pytest.MonkeyPatch()
    patch.setenv("TMPDIR", str(directory))
    patch.setattr(tempfile, "tempdir", str(directory))
    try:
        yield directory
    finally:
        for prefix in (WORK_PREFIX, SPOOL_PREFIX):
            sweep_leftovers(directory, prefix)
        patch.undo()
