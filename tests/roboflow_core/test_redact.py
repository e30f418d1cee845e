"""The logging filter that keeps credentials out of logs whatever a message holds."""

from __future__ import annotations

import io
import json
import logging

import pytest

from roboflow_core.redact import RedactingFilter, install_redaction, redact

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


def test_the_filter_redacts_messages_arguments_and_tracebacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", SECRET)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter('{"msg": "%(message)s"}'))
    logger = logging.getLogger("roboflow.test-redact")
    logger.addHandler(handler)
    logger.propagate = False
    install_redaction(logger)
    install_redaction(logger)  # once per handler
    assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    try:
        logger.warning("opening %s", f"s3://b/k?session_token={SECRET}")
        try:
            raise ValueError(f"server echoed {SECRET}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert SECRET not in out and "server echoed ***" in out
    assert json.loads(out.splitlines()[0]) == {"msg": "opening s3://b/k?session_token=***"}
