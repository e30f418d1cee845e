"""Glob patterns over object keys: ``*`` and ``?`` stay in one path segment, ``**`` spans many."""

from __future__ import annotations

import re

_WILDCARDS = frozenset("*?[")


def has_wildcards(pattern: str) -> bool:
    """Whether ``pattern`` holds a glob wildcard."""
    return bool(_WILDCARDS & set(pattern))


def literal_prefix(pattern: str) -> str:
    """The directory part of ``pattern`` before its first wildcard (the prefix to list)."""
    cut = min((pattern.index(c) for c in _WILDCARDS if c in pattern), default=len(pattern))
    head = pattern[:cut]
    return head[: head.rfind("/")] if "/" in head else ""


def compile_glob(pattern: str) -> re.Pattern[str]:
    """A regular expression that matches whole keys against a glob ``pattern``.

    ``**/`` matches any number of directories (none included), ``**`` anything, ``*`` anything
    but ``/``, ``?`` one character but ``/``, ``[...]`` one of a set (``[!...]`` negates).
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        end = pattern.find("]", i + 2) if c == "[" else -1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif end > 0:
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = re.escape(body[1:] if negate else body).replace(r"\-", "-")
            out.append(f"[{'^' if negate else ''}{body}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)
