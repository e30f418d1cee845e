"""Errors as JSON answers: ``{"error": reason, "status": code}`` (and ``details`` for bad input).

Unknown ids are ``404``, requests that do not fit the state ``409``, bad input ``400`` (a bad
config, a refused URL, an input that does not exist), a store or storage that cannot be reached
``503``/``502``; anything else is a ``500`` whose body says only
that (the reason goes to the server's log). Reasons never carry a URL's query.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from roboflow_core import (
    ConfigError,
    ConflictError,
    CoordinationError,
    DatasetError,
    NotFoundError,
    RoboflowError,
    StorageError,
)
from roboflow_core.redact import redact
from roboflow_storage import ObjectNotFoundError

__all__ = ["EXCEPTION_HANDLERS", "error_response"]

log = logging.getLogger("roboflow.ui")

_STATUS: tuple[tuple[type[RoboflowError], int], ...] = (
    (NotFoundError, 404),
    (ObjectNotFoundError, 404),
    (ConflictError, 409),
    (ConfigError, 400),
    (DatasetError, 422),
    (StorageError, 502),
    (CoordinationError, 503),
)


def error_response(
    status: int, reason: str, *, details: Any = None, headers: dict[str, str] | None = None
) -> Response[dict[str, Any]]:
    """The JSON error answer."""
    body: dict[str, Any] = {"error": redact(reason), "status": status}
    if details is not None:
        body["details"] = details
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _roboflow(request: Request[Any, Any, Any], exc: RoboflowError) -> Response[dict[str, Any]]:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
    if isinstance(exc, StorageError) and not exc.transient and status == 502:
        status = 400  # a URL refused or an input missing: the request's fault, not an outage
    if status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, redact(str(exc)))
    return error_response(status, str(exc))


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    return error_response(400, f"invalid request: {exc.detail}", details=exc.extra)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.error("%s %s failed: %s", request.method, request.url.path, redact(repr(exc)))
    return error_response(500, "internal error (see the server log)")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    RoboflowError: _roboflow,
    ValidationException: _validation,
    HTTPException: _http,
    Exception: _internal,
}
