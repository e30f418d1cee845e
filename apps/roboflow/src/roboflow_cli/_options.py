"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from roboflow_core.logs import LOG_FORMATS

__all__ = ["log_format_option"]

_F = TypeVar("_F", bound=Callable[..., Any])


def log_format_option(fn: _F) -> _F:
    """``--log-format text|json`` (env ``ROBOFLOW_LOG_FORMAT``), passed as ``log_format``."""
    return click.option(
        "--log-format",
        type=click.Choice(LOG_FORMATS),
        envvar="ROBOFLOW_LOG_FORMAT",
        default="text",
        show_default=True,
        help="Log lines as text or as one JSON object per line (time, level, logger, message, pod, "
        "role, batch, job, trace_id). Env: ROBOFLOW_LOG_FORMAT.",
    )(fn)
