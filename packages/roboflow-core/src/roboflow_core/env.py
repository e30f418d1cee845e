"""Numbers from environment variables: one parser, and a :class:`ConfigError` naming the variable.

An unset or blank variable gives the default; anything else must parse as the number's kind and
be positive (or, with ``allow_zero``, non-negative).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

from roboflow_core.errors import ConfigError

__all__ = ["env_float", "env_int"]

_N = TypeVar("_N", int, float)


def _read(name: str, default: _N, kind: type[_N], allow_zero: bool, env: Mapping[str, str] | None) -> _N:
    text = (os.environ if env is None else env).get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or value != value or value < 0 or (value == 0 and not allow_zero):  # NaN != NaN
        sign = "non-negative" if allow_zero else "positive"
        raise ConfigError(
            f"must be a {sign} {'whole number' if kind is int else 'number'}, got {text!r}", key=name
        )
    return value


def env_int(
    name: str, default: int, *, allow_zero: bool = False, env: Mapping[str, str] | None = None
) -> int:
    """The whole number in variable ``name`` (``default`` when unset or blank).

    Raises:
        ConfigError: Not a whole number, or not positive (non-negative with ``allow_zero``).
    """
    return _read(name, default, int, allow_zero, env)


def env_float(
    name: str, default: float, *, allow_zero: bool = False, env: Mapping[str, str] | None = None
) -> float:
    """The number in variable ``name`` (``default`` when unset or blank).

    Raises:
        ConfigError: Not a number, or not positive (non-negative with ``allow_zero``).
    """
    return _read(name, default, float, allow_zero, env)
