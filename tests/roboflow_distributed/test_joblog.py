"""Per-job log lines in the store: bounded, credentials removed, only the claim's own thread."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from roboflow_core import telemetry
from roboflow_core.logs import log_fields
from roboflow_distributed.joblog import MAX_BYTES, MAX_LINES, JobLogRecorder, read_job_logs
from roboflow_distributed.records import WorkUnit
from roboflow_distributed.store import SqliteStore

SECRET = "s3cr3t-never-shown"


def _unit() -> WorkUnit:
    return WorkUnit(id="u1", batch="b1", source="/x.mcap", size=1, config_hash="h", seq=0, claims=2)


def test_a_claims_lines_are_kept_bounded_and_without_credentials(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    log = logging.getLogger("roboflow.worker")
    try:
        with log_fields(batch="b1", job="u1"), JobLogRecorder(store, "pod-a", _unit()) as recorder:
            log.debug("below INFO: not kept")
            for i in range(MAX_LINES + 50):
                log.info("step %d of s3://bucket/rec.mcap?secret_access_key=%s&region=x", i, SECRET)
            other = threading.Thread(target=log.error, args=("another job's line",))
            other.start()  # a plain thread runs outside the job's context
            other.join()
            with log_fields(job="u2"):
                log.warning("a line of job u2")
            helper = threading.Thread(target=telemetry.in_context(log.warning), args=("helper %d", 7))
            helper.start()  # a helper started in the job's context writes for the job
            helper.join()
            log.error("gave up: %s", "oss://b/k?access_key_secret=" + SECRET)
            recorder.failed(f"reason with s3://b/k?token={SECRET}")
        [saved] = read_job_logs(store, "b1", "u1")
    finally:
        store.close()
    messages = [line.message for line in saved.lines]
    assert len(messages) == MAX_LINES and saved.dropped == 52  # the oldest went
    assert sum(len(m) + 64 for m in messages) <= MAX_BYTES
    assert messages[-1] == "gave up: oss://b/k?access_key_secret=***" and saved.lines[-1].level == "ERROR"
    assert messages[-2] == "helper 7"
    assert messages[-3] == f"step {MAX_LINES + 49} of s3://bucket/rec.mcap?secret_access_key=***&region=x"
    assert not any("another job" in m or "below INFO" in m or "u2" in m for m in messages)
    assert saved.claim == 2 and saved.pod == "pod-a" and saved.error == "reason with s3://b/k?token=***"
    assert SECRET not in saved.error and not any(SECRET in m for m in messages)


def test_long_lines_are_cut_and_the_byte_bound_holds(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    try:
        with log_fields(batch="b1", job="u1"), JobLogRecorder(store, "pod-a", _unit()):
            for _ in range(100):
                logging.getLogger("roboflow.pipeline").warning("x" * 10_000)
        [saved] = read_job_logs(store, "b1", "u1")
    finally:
        store.close()
    assert all(len(line.message) == 2000 for line in saved.lines)
    assert sum(len(line.message) + 64 for line in saved.lines) <= MAX_BYTES
    assert len(saved.lines) + saved.dropped == 100
