"""Log set-up for the commands: text or one JSON object per line, credentials always redacted.

``configure_logging`` is what ``roboflow run``, ``convert`` and ``ui`` call (``--log-format``,
``ROBOFLOW_LOG_FORMAT``). A JSON line has ``time`` (UTC, ISO 8601), ``level``, ``logger``,
``message``, ``pod`` and ``role`` (of the process), ``batch`` and ``job`` (while a job runs, from
:func:`log_fields`), ``trace_id`` (of the current span, when tracing records it) and ``error`` (a
traceback). In either format the handler's last filter is
:class:`roboflow_core.redact.RedactingFilter`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, TextIO

from roboflow_core.redact import RedactingFilter

__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "LogFormat",
    "configure_logging",
    "current_log_fields",
    "log_fields",
]

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

_FIELDS: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "roboflow_log_fields", default=MappingProxyType({})
)


@contextmanager
def log_fields(**fields: str) -> Iterator[None]:
    """Add ``fields`` (``batch``, ``job``, ...) to the JSON log lines written while the body runs."""
    token = _FIELDS.set({**_FIELDS.get(), **fields})
    try:
        yield
    finally:
        _FIELDS.reset(token)


def current_log_fields() -> Mapping[str, str]:
    """The fields :func:`log_fields` set for the code running now (``batch``, ``job``; empty outside)."""
    return _FIELDS.get()


def _trace_id() -> str | None:
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for the keys)."""

    def __init__(self, static: dict[str, str] | None = None) -> None:
        super().__init__()
        self._static = {k: v for k, v in (static or {}).items() if v}

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **self._static,
            **_FIELDS.get(),
        }
        trace_id = _trace_id()
        if trace_id is not None:
            line["trace_id"] = trace_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["error"] = record.exc_text
        return json.dumps(line, default=str)


def configure_logging(
    fmt: str | None,
    *,
    level: int = logging.WARNING,
    pod: str | None = None,
    role: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Send the process's log records to ``stream`` (stderr) as text or JSON lines, redacted.

    Args:
        fmt: ``text`` or ``json``; ``None`` reads ``ROBOFLOW_LOG_FORMAT`` (default ``text``).
        level: The root logger's level.
        pod: The pod id written into every line.
        role: The pod's roles written into every line.
        stream: Where lines go.

    Raises:
        ValueError: An unknown format.
    """
    chosen = (fmt or os.environ.get("ROBOFLOW_LOG_FORMAT") or "text").strip().lower()
    if chosen not in LOG_FORMATS:
        raise ValueError(f"unknown log format {chosen!r}: use one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    if chosen == "json":
        handler.setFormatter(JsonFormatter({"pod": pod or "", "role": role or ""}))
    else:
        prefix = f"{pod} " if pod else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s {prefix}%(name)s %(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
