"""Keep credentials out of logs: the last line of defence behind ``display_url``.

Nothing Roboflow logs should hold a credential (URLs with credentials are refused, URLs are
shown without their query), but a dependency's message or a traceback might. :func:`redact`
blanks out what looks like one: the values of the process's secret environment variables
(``AWS_SECRET_ACCESS_KEY``, ``*_TOKEN``, ...), ``secret_access_key=...``-style parameters, and
request signatures. :class:`RedactingFilter` applies it to every record a logging handler emits,
exception text included (:func:`roboflow_core.logs.configure_logging` puts one on its handler).
"""

from __future__ import annotations

import logging
import os
import re

__all__ = ["REDACTED", "RedactingFilter", "redact", "secret_values"]

REDACTED = "***"
#: Environment variables whose values are secrets, by name (any ``*_SECRET*``, ``*_TOKEN``, ...).
_SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY)", re.IGNORECASE)
_MIN_SECRET_LEN = 6  # shorter values would blank out ordinary words
_SHAPES = re.compile(
    r"(?P<key>(?:secret_access_key|access_key_secret|session_token|security_token|password|"
    r"x-amz-security-token|x-amz-signature|x-amz-credential|signature|token)"
    r"[\"']?\s*[=:]\s*[\"']?)(?P<value>[^\s&\"',;)}\]]+)"
    r"|(?P<auth>(?:AWS4-HMAC-SHA256|OSS4-HMAC-SHA256|Bearer|Basic)\s+)(?P<cred>[^\s\"']+(?:,\s*\w+=[^\s,\"']+)*)",
    re.IGNORECASE,
)


def secret_values() -> list[str]:
    """The values of this process's secret environment variables, longest first."""
    found = {
        value
        for name, value in os.environ.items()
        if _SECRET_NAME.search(name) and len(value) >= _MIN_SECRET_LEN
    }
    return sorted(found, key=len, reverse=True)


def _shape(match: re.Match[str]) -> str:
    if match["key"] is not None:
        return f"{match['key']}{REDACTED}"
    return f"{match['auth']}{REDACTED}"


def redact(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with every secret value and credential-shaped parameter replaced by ``***``.

    Args:
        text: Any text.
        secrets: Values to blank out; default: :func:`secret_values`.
    """
    for secret in secret_values() if secrets is None else secrets:
        text = text.replace(secret, REDACTED)
    return _SHAPES.sub(_shape, text)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record's message and exception text (it never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = secret_values()
        message = record.getMessage()
        cleaned = redact(message, secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, secrets)
        return True
