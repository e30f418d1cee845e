"""Who may change things: the bind address rule, the bearer token, and same-origin writes.

- ``roboflow ui`` binds 127.0.0.1 by default; any other address needs ``ROBOFLOW_UI_TOKEN``
  (:func:`check_bind` refuses to start without it).
- With a token, every mutating request (POST, PUT, PATCH, DELETE) needs
  ``Authorization: Bearer <token>`` (``401`` otherwise). Reading needs none.
- A mutating request whose ``Origin`` is not the server's own is refused (``403``): no other web
  site can make a browser retry or delete jobs through a console on localhost. There is no CORS
  header at all, so no other origin can read the API either.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPScope,
    Receive,
    Scope,
    Send,
)

from roboflow_core import ConfigError

__all__ = ["TOKEN_ENV", "check_bind", "is_loopback", "write_guard"]

TOKEN_ENV = "ROBOFLOW_UI_TOKEN"
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1) or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve on a non-loopback address without a token.

    Raises:
        ConfigError: ``host`` is not loopback and no token is set.
    """
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to serve on {host} without a token: set {TOKEN_ENV} (mutating requests then "
            "need 'Authorization: Bearer <token>'), or bind 127.0.0.1",
            key="--host",
        )


def write_guard(token: str | None) -> Any:
    """ASGI middleware factory: checks the origin and the bearer token of mutating requests."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == ScopeType.HTTP and scope["method"] in _MUTATING:
                refusal = _refusal(scope, token)
                if refusal is not None:
                    await _send_error(send, *refusal)
                    return
            await app(scope, receive, send)

        return guarded

    return middleware


def _refusal(scope: HTTPScope, token: str | None) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    origin = headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != headers.get("host", ""):
        return 403, f"cross-origin request from {origin} refused", []
    if token is None:
        return None
    scheme, _, given = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        return (
            401,
            "this request needs 'Authorization: Bearer <token>' (ROBOFLOW_UI_TOKEN)",
            [(b"www-authenticate", b'Bearer realm="roboflow"')],
        )
    return None


async def _send_error(send: Send, status: int, reason: str, extra: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"error": reason, "status": status}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": headers,
    }
    await send(start)
    done: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(done)
