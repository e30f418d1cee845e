"""The web pages (server-rendered Jinja templates) and the htmx fragments that keep them live.

A page renders its fragment once and then asks for it again every 2 s (``hx-trigger="every
2s"``) and after each action. Actions are htmx requests to the REST API itself, confirmed first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import Parameter
from litestar.response import Template

from roboflow_core import NotFoundError, RoboflowError
from roboflow_core.redact import redact
from roboflow_distributed.records import BatchPhase, UnitStatus
from roboflow_distributed.service import Operations

__all__ = ["PAGE_HANDLERS", "template_filters"]

_PAGE_SIZE = 50
_LOG_TAIL = 200
Offset = Annotated[int, Parameter(ge=0, le=1_000_000)]


def template_filters() -> dict[str, Callable[..., Any]]:
    """Jinja filters of the templates."""
    return {"ago": _ago, "clock": _clock, "pct": _pct}


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    secs = max(time.time() - ts, 0.0)
    if secs < 90:
        return f"{secs:.0f}s ago"
    if secs < 5400:
        return f"{secs / 60:.0f}m ago"
    return f"{secs / 3600:.1f}h ago"


def _clock(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + " UTC" if ts else "-"


def _pct(done: int, total: int) -> int:
    return int(100 * done / total) if total else 0


def _page(name: str, request: Request[Any, Any, Any], **context: Any) -> Template:
    return Template(template_name=name, context={"path": request.url.path, **context})


def _guarded(name: str, request: Request[Any, Any, Any], build: Callable[[], dict[str, Any]]) -> Template:
    """Render ``name`` with ``build()``; an unknown id or an unreachable store gets an error page."""
    try:
        return _page(name, request, **build())
    except RoboflowError as err:
        code = 404 if isinstance(err, NotFoundError) else 503
        return Template(
            template_name="error.html",
            context={"path": request.url.path, "error": redact(str(err)), "code": code},
            status_code=code,
        )


@get("/", include_in_schema=False, sync_to_thread=True)
def dashboard(request: Request[Any, Any, Any], ops: Operations) -> Template:
    """Batches by phase, jobs by status, workers, throughput, recent batches."""
    return _guarded("dashboard.html", request, lambda: {"o": ops.overview()})


@get("/ui/dashboard", include_in_schema=False, sync_to_thread=True)
def dashboard_fragment(request: Request[Any, Any, Any], ops: Operations) -> Template:
    return _guarded("_dashboard.html", request, lambda: {"o": ops.overview()})


@get("/batches", include_in_schema=False, sync_to_thread=True)
def batches_page(
    request: Request[Any, Any, Any], ops: Operations, phase: str | None = None, offset: Offset = 0
) -> Template:
    """Every batch, newest first."""
    chosen = BatchPhase(phase) if phase in set(BatchPhase) else None
    return _guarded(
        "batches.html",
        request,
        lambda: {
            "page": ops.batches(phase=chosen, offset=offset, limit=_PAGE_SIZE),
            "phase": chosen,
            "phases": list(BatchPhase),
        },
    )


@get("/batches/{batch_id:str}", include_in_schema=False, sync_to_thread=True)
def batch_page(request: Request[Any, Any, Any], ops: Operations, batch_id: str) -> Template:
    """One batch with its jobs."""
    return _guarded("batch.html", request, lambda: {"d": ops.batch(batch_id), "statuses": list(UnitStatus)})


@get("/ui/batches/{batch_id:str}", include_in_schema=False, sync_to_thread=True)
def batch_fragment(request: Request[Any, Any, Any], ops: Operations, batch_id: str) -> Template:
    return _guarded("_batch.html", request, lambda: {"d": ops.batch(batch_id)})


@get("/jobs", include_in_schema=False, sync_to_thread=True)
def jobs_page(request: Request[Any, Any, Any]) -> Template:
    """Jobs of every batch, with filters and search."""
    return _page("jobs.html", request, statuses=list(UnitStatus), query=dict(request.query_params))


@get("/ui/jobs", include_in_schema=False, sync_to_thread=True)
def jobs_fragment(
    request: Request[Any, Any, Any],
    ops: Operations,
    batch: str | None = None,
    status: str | None = None,
    q: Annotated[str | None, Parameter(max_length=500)] = None,
    offset: Offset = 0,
) -> Template:
    chosen = UnitStatus(status) if status in set(UnitStatus) else None
    return _guarded(
        "_jobs.html",
        request,
        lambda: {
            "page": ops.jobs(
                batch=batch or None,
                status=chosen,
                query=q,
                offset=offset,
                limit=_PAGE_SIZE,
            ),
            "args": {"batch": batch or "", "status": chosen or "", "q": q or ""},
        },
    )


@get("/jobs/{batch_id:str}/{unit_id:str}", include_in_schema=False, sync_to_thread=True)
def job_page(request: Request[Any, Any, Any], ops: Operations, batch_id: str, unit_id: str) -> Template:
    """One job: progress, attempts, error reason, log tail, actions."""
    return _guarded("job.html", request, lambda: _job_context(ops, f"{batch_id}/{unit_id}"))


@get("/ui/jobs/{batch_id:str}/{unit_id:str}", include_in_schema=False, sync_to_thread=True)
def job_fragment(request: Request[Any, Any, Any], ops: Operations, batch_id: str, unit_id: str) -> Template:
    return _guarded("_job.html", request, lambda: _job_context(ops, f"{batch_id}/{unit_id}"))


def _job_context(ops: Operations, ref: str) -> dict[str, Any]:
    logs = ops.job_logs(ref)
    lines = [(claim.claim, line) for claim in logs.claims for line in claim.lines][-_LOG_TAIL:]
    return {"j": ops.job(ref), "lines": lines, "dropped": sum(c.dropped for c in logs.claims)}


@get("/workers", include_in_schema=False, sync_to_thread=True)
def workers_page(request: Request[Any, Any, Any], ops: Operations) -> Template:
    """Pods: roles, heartbeat, current job, throughput."""
    return _guarded("workers.html", request, lambda: {"workers": ops.workers()})


@get("/ui/workers", include_in_schema=False, sync_to_thread=True)
def workers_fragment(request: Request[Any, Any, Any], ops: Operations) -> Template:
    return _guarded("_workers.html", request, lambda: {"workers": ops.workers()})


@get("/batches/{batch_id:str}/episodes/{episode:int}", include_in_schema=False, sync_to_thread=True)
def viewer_page(request: Request[Any, Any, Any], ops: Operations, batch_id: str, episode: int) -> Template:
    """The episode viewer: cameras in sync with plots of the state and action vectors."""

    def build() -> dict[str, Any]:
        reader = ops.dataset(batch_id)
        return {
            "d": ops.batch(batch_id),
            "dataset": reader.summary(),
            "episodes": reader.episodes(),
            "episode": episode,
        }

    return _guarded("viewer.html", request, build)


PAGE_HANDLERS = [
    dashboard,
    dashboard_fragment,
    batches_page,
    batch_page,
    batch_fragment,
    jobs_page,
    jobs_fragment,
    job_page,
    job_fragment,
    workers_page,
    workers_fragment,
    viewer_page,
]
