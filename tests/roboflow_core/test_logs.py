"""Log set-up: JSON lines with the job's fields, and credentials redacted in every format (what
is redacted is tested in test_redact.py)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from roboflow_core.logs import configure_logging, log_fields

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def root_handlers() -> Iterator[None]:
    """Give the root logger its handlers and level back after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_lines_carry_pod_job_fields_and_no_credential(
    root_handlers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    stream = io.StringIO()
    configure_logging("json", level=logging.INFO, pod="pod-1", role="worker", stream=stream)
    log = logging.getLogger("roboflow.test")
    log.info("outside %s", "a job")
    with log_fields(batch="b1", job="j1"):
        log.warning("reading %s", f"s3://bucket/x.mcap?secret_access_key={SECRET}")
        try:
            raise ValueError(f"bad token {SECRET}")
        except ValueError:
            log.exception("failed")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        "outside a job",
        "reading s3://bucket/x.mcap?secret_access_key=***",
        "failed",
    ]
    assert all(line["pod"] == "pod-1" and line["role"] == "worker" for line in lines)
    assert all(line["logger"] == "roboflow.test" and line["time"].endswith("+00:00") for line in lines)
    assert "job" not in lines[0] and (lines[1]["batch"], lines[1]["job"]) == ("b1", "j1")
    assert lines[1]["level"] == "warning" and "ValueError: bad token ***" in lines[2]["error"]
    assert SECRET not in stream.getvalue()


def test_text_format_is_redacted_too_and_unknown_formats_are_refused(root_handlers: None) -> None:
    stream = io.StringIO()
    configure_logging("text", pod="pod-2", stream=stream)
    logging.getLogger("roboflow.test").warning("url s3://b/k?secret_access_key=%s&x=1", SECRET)
    assert "pod-2 roboflow.test WARNING url s3://b/k?secret_access_key=***&x=1" in stream.getvalue()
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        configure_logging("xml")
