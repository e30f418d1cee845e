"""The logging filter that keeps credentials out of logs whatever a message holds."""

from __future__ import annotations

import io
import json
import logging

import pytest

from roboflow_core.logs import configure_logging
from roboflow_core.redact import RedactingFilter, redact

SECRET = "canary-Zq81xxVb0wz"


def test_secret_values_of_the_environment_and_credential_shapes_are_blanked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    text = redact(
        f"failed with {SECRET}; s3://b/k?secret_access_key=abc123&region=x "
        "Authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=deadbeef X-Amz-Security-Token=tok&"
    )
    assert SECRET not in text and "abc123" not in text and "deadbeef" not in text
    assert "AKID/2026" not in text and "tok&" not in text
    assert "region=x" in text and "s3://b/k" in text  # the rest stays readable


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_pod_logs_redact_messages_arguments_and_tracebacks(monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", SECRET)
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging(fmt, level=logging.INFO, pod="p1", stream=stream)
    try:
        assert any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters)
        log = logging.getLogger("roboflow.test-redact")
        log.warning("opening %s", f"s3://b/k?session_token={SECRET}")
        try:
            raise ValueError(f"server echoed {SECRET}")
        except ValueError:
            log.exception("failed")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    out = stream.getvalue()
    assert SECRET not in out and "server echoed ***" in out and "session_token=***" in out
    if fmt == "json":
        first = json.loads(out.splitlines()[0])
        assert first["message"] == "opening s3://b/k?session_token=***" and first["pod"] == "p1"
