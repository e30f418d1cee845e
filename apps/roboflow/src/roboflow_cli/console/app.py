"""The ``roboflow ui`` application: REST API, web pages and their assets in one ASGI app.

:func:`create_app` builds it over an :class:`~roboflow_distributed.service.Operations`; more
route handlers (a ``/metrics`` endpoint, say) are added through ``extra_handlers``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig
from litestar.types import ControllerRouterHandler

from roboflow_cli.console.api import ApiController
from roboflow_cli.console.errors import EXCEPTION_HANDLERS
from roboflow_cli.console.pages import PAGE_HANDLERS, template_filters
from roboflow_cli.console.security import write_guard
from roboflow_core import telemetry
from roboflow_distributed.service import Operations

__all__ = ["create_app"]

_HERE = Path(__file__).parent


@get("/openapi.json", include_in_schema=False, media_type="application/json", sync_to_thread=False)
def openapi_document(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The OpenAPI document of the API."""
    return request.app.openapi_schema.to_schema()


@get("/metrics", include_in_schema=False, sync_to_thread=False)
def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The process's metrics in Prometheus text (or OpenMetrics when ``Accept`` asks for it)."""
    body, content_type = telemetry.metrics_exposition(request.headers.get("accept"))
    return Response(body, media_type=content_type)


@get("/healthz", include_in_schema=False, media_type="text/plain", sync_to_thread=True)
def healthz(ops: Operations) -> str:
    """``ok`` while the coordination store answers (readiness; 503 when it does not)."""
    ops.phases()
    return "ok\n"


@get("/livez", include_in_schema=False, media_type="text/plain", sync_to_thread=False)
def livez() -> str:
    """``ok`` while the server answers at all (liveness: a store outage restarts nothing)."""
    return "ok\n"


def create_app(
    ops: Operations,
    *,
    token: str | None = None,
    extra_handlers: Sequence[ControllerRouterHandler] = (),
    debug: bool = False,
) -> Litestar:
    """The console app.

    Args:
        ops: The operations service (the app does not close its store).
        token: When set, mutating requests need ``Authorization: Bearer <token>``.
        extra_handlers: More route handlers served by the same app (e.g. ``/metrics``).
        debug: Litestar's debug mode (tracebacks in the server log).
    """
    return Litestar(
        route_handlers=[
            ApiController,
            *PAGE_HANDLERS,
            openapi_document,
            metrics,
            healthz,
            livez,
            create_static_files_router(
                path="/static", directories=[_HERE / "static"], include_in_schema=False
            ),
            *extra_handlers,
        ],
        dependencies={"ops": Provide(lambda: ops, sync_to_thread=False, use_cache=True)},
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[write_guard(token)],
        template_config=TemplateConfig(
            directory=_HERE / "templates",
            engine=JinjaTemplateEngine,
            engine_callback=lambda engine: engine.engine.filters.update(template_filters()),
        ),
        openapi_config=OpenAPIConfig(
            title="Roboflow operations API",
            version="1.0.0",
            description="Batches, jobs, workers and datasets of a Roboflow coordination store.",
            path="/schema",
            render_plugins=[],
            enabled_endpoints={"openapi.json"},
        ),
        debug=debug,
    )
