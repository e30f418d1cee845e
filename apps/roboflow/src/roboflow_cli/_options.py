"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from roboflow_core.logs import LOG_FORMATS

__all__ = ["episodes_per_chunk_option", "log_format_option"]

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


def episodes_per_chunk_option(fn: _F) -> _F:
    """``--episodes-per-chunk N`` (the original's flag), passed as ``episodes_per_chunk``."""
    return click.option(
        "--episodes-per-chunk",
        type=click.IntRange(min=1),
        default=None,
        help="Episodes (lerobot-v2.1) or files (lerobot-v3) per chunk directory of a new dataset "
        "(its chunks_size; default 1000). An existing dataset keeps its own; another value is an error.",
    )(fn)
