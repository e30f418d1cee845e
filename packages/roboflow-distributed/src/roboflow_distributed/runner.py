"""Run a pod: its roles in threads, a heartbeat, graceful shutdown on SIGTERM/SIGINT.

``run_pod`` is what ``roboflow run`` calls. Every role is a loop of ``tick()`` calls; a tick that
found nothing to do is followed by a pause. A store failure in a tick is logged and retried with
backoff (the :class:`~roboflow_distributed.breaker.GuardedStore` makes an unreachable store fail
fast), so a pod rides out a store restart.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Literal, Protocol, TypeVar

from roboflow_core import CoordinationError, telemetry
from roboflow_core.workdirs import process_workdir
from roboflow_distributed import keys, metrics
from roboflow_distributed.breaker import GuardedStore
from roboflow_distributed.finalizer import Finalizer
from roboflow_distributed.health import HealthServer, PodView
from roboflow_distributed.pool import WorkerPool
from roboflow_distributed.reaper import Reaper
from roboflow_distributed.records import Heartbeat, encode
from roboflow_distributed.scanner import Scanner
from roboflow_distributed.settings import STORE_RETRY, Settings, store_down
from roboflow_distributed.store import Store
from roboflow_distributed.worker import Shutdown, Worker
from roboflow_storage import retry_call

__all__ = ["ROLES", "PodReport", "Role", "default_pod_id", "run_pod"]

log = logging.getLogger("roboflow.pod")
_T = TypeVar("_T")

Role = Literal["all", "unified", "worker", "scanner", "finalizer", "reaper"]
ROLES: tuple[Role, ...] = ("all", "unified", "worker", "scanner", "finalizer", "reaper")
"""The roles a pod may run; ``all`` and ``unified`` (the original's name) are every role."""


class _Ticker(Protocol):
    def tick(self) -> bool: ...


@dataclass(slots=True)
class PodReport:
    """What a pod did before it stopped."""

    pod: str
    units_completed: int = 0
    errors: list[str] = field(default_factory=list)


def default_pod_id() -> str:
    """``POD_ID`` / ``POD_NAME`` from the environment, else ``host-pid-random``."""
    return (
        os.environ.get("POD_ID")
        or os.environ.get("POD_NAME")
        or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
    )


def _expand(roles: Sequence[Role]) -> list[Role]:
    if "all" in roles or "unified" in roles:
        return ["scanner", "reaper", "finalizer", "worker"]
    return list(dict.fromkeys(roles))


def run_pod(
    store: Store,
    roles: Sequence[Role],
    *,
    pod: str | None = None,
    settings: Settings | None = None,
    exit_when_idle: bool = False,
    install_signals: bool = True,
    shutdown: Shutdown | None = None,
    health: tuple[str, int] | None = None,
) -> PodReport:
    """Run ``roles`` until SIGTERM/SIGINT (or, with ``exit_when_idle``, until every batch is finished).

    Args:
        store: The coordination store (wrapped in a circuit breaker here).
        roles: Any of ``worker``, ``scanner``, ``finalizer``, ``reaper``, or ``all`` / ``unified``.
        pod: This pod's id (see :func:`default_pod_id`).
        settings: Intervals and limits (default: from the environment).
        exit_when_idle: Stop once no batch is pending, running or merging.
        install_signals: Handle SIGTERM/SIGINT (only possible in the main thread).
        shutdown: A stop signal to use (tests stop pods through it).
        health: ``(host, port)`` to serve ``/health/live``, ``/health/ready``, ``/health`` and
            ``/metrics`` on (see :mod:`roboflow_distributed.health`).
    """
    settings = settings or Settings.from_env()
    pod = pod or default_pod_id()
    # the pod's scratch space; making it removes what killed pods left in the temp directory
    workdir = process_workdir()
    shutdown = shutdown or Shutdown(settings.shutdown_grace)
    guarded = GuardedStore(store)
    expanded = _expand(roles)
    _enable_telemetry(pod, expanded, metrics_too=health is not None)
    report = PodReport(pod)
    # WORKER_MAX_CONCURRENT_JOBS > 1: the worker role runs as that many processes (pool.py)
    pooled = "worker" in expanded and settings.max_concurrent_jobs > 1
    worker = Worker(guarded, pod, settings, shutdown) if "worker" in expanded and not pooled else None
    pool = WorkerPool(store.url, pod, settings, settings.max_concurrent_jobs) if pooled else None
    scanner = Scanner(guarded, pod, settings) if "scanner" in expanded else None
    tickers = _tickers(guarded, pod, settings, expanded, scanner, worker)
    if install_signals:
        _install_signals(shutdown)
    beating = [r for r in expanded if not (pooled and r == "worker")]  # the slots beat as workers
    beat = _Heartbeat(guarded, pod, beating, settings, worker)
    _retry_store(beat.write, shutdown)
    if "worker" in expanded:
        released = _retry_store(Reaper(guarded, pod, settings).release_own, shutdown)
        if released:
            log.info("re-queued %d unit(s) this pod owned before a restart", released)
    threads = [
        threading.Thread(target=_loop, args=(name, t, every, shutdown, report), name=name, daemon=True)
        for name, (t, every) in tickers.items()
    ]
    threads.append(threading.Thread(target=beat.run, args=(shutdown,), name="heartbeat", daemon=True))
    if exit_when_idle:
        threads.append(
            threading.Thread(
                target=_exit_when_idle, args=(guarded, shutdown, settings), name="idle", daemon=True
            )
        )
    log.info("pod %s running %s on %s (work directory %s)", pod, ", ".join(expanded), store.url, workdir)
    for thread in threads:
        thread.start()
    if pool is not None:
        pool.start()
    stop_serving: Callable[[], None] | None = None
    if health is not None:
        view = PodView(
            pod=pod,
            roles=[str(r) for r in expanded],
            started_at=beat.started_at,
            heartbeat_interval=settings.heartbeat_interval,
            last_heartbeat=lambda: beat.last_ok,
            breaker_open=lambda: guarded.is_open,
            threads=lambda: threads,
            current_unit=lambda: worker.current if worker else None,
            abandoned=lambda: worker.wedged if worker else 0,
        )
        stop_serving = _serve(view, health, beat, scanner)
    shutdown.event.wait()
    pooled_completed = pool.stop() if pool is not None else 0
    for thread in threads:
        thread.join()
    if worker is not None:
        worker.release_reserved()
    if stop_serving is not None:
        stop_serving()
    beat.clear()
    telemetry.flush_traces()
    report.units_completed = worker.completed if worker else pooled_completed
    log.info("pod %s stopped", pod)
    return report


def _tickers(
    store: Store,
    pod: str,
    settings: Settings,
    roles: list[Role],
    scanner: Scanner | None,
    worker: Worker | None,
) -> dict[str, tuple[_Ticker, float]]:
    """The pod's role loops with their pauses."""
    tickers: dict[str, tuple[_Ticker, float]] = {}
    if scanner is not None:
        tickers["scanner"] = (scanner, settings.scan_interval)
    if "reaper" in roles:
        tickers["reaper"] = (Reaper(store, pod, settings), settings.reaper_interval)
    if "finalizer" in roles:
        tickers["finalizer"] = (Finalizer(store, pod, settings), settings.finalizer_interval)
    if worker is not None:
        tickers["worker"] = (worker, settings.poll_interval)
    return tickers


def _enable_telemetry(pod: str, roles: list[Role], *, metrics_too: bool) -> None:
    """Traces when the ``OTEL_*`` variables ask for them; metrics when the pod serves them."""
    role = ",".join(roles)
    telemetry.enable_tracing(pod=pod, role=role)
    if metrics_too:
        telemetry.enable_metrics(pod=pod, role=role)
        metrics.prime()


def _serve(
    view: PodView, address: tuple[str, int], beat: _Heartbeat, scanner: Scanner | None
) -> Callable[[], None]:
    """Start the health server and the gauges read from the pod; the function that stops them."""
    probes = [
        metrics.HEARTBEAT_AGE.watch(lambda: time.time() - beat.last_ok),
        metrics.READY.watch(lambda: float(view.status()["ready"])),
        metrics.ABANDONED.watch(lambda: float(view.abandoned())),
    ]
    if scanner is not None:
        probes.append(metrics.LEADER.watch(lambda: float(scanner.lease.held), {"lease": "scanner"}))
    server = HealthServer(view, *address).start()

    def stop() -> None:
        server.stop()
        for forget in probes:
            forget()

    return stop


def _loop(name: str, ticker: _Ticker, every: float, shutdown: Shutdown, report: PodReport) -> None:
    def logged(err: BaseException, delay: float) -> None:
        log.warning("%s: store unavailable, retrying in %.1f s: %s", name, delay, err)

    while not shutdown.event.is_set():
        try:
            busy = _until_stopped(ticker.tick, shutdown, logged)
        except CoordinationError:
            continue  # stopped while the store was unreachable
        except Exception as err:  # a role must not die: log, keep the reason, go on
            log.exception("%s: unexpected error", name)
            report.errors.append(f"{name}: {type(err).__name__}: {err}")
            busy = False
        if not busy:
            shutdown.event.wait(every)


def _until_stopped(
    op: Callable[[], _T], shutdown: Shutdown, on_retry: Callable[[BaseException, float], None]
) -> _T:
    """Run ``op``, waiting out an unreachable store until the pod stops (then its error is raised)."""
    return retry_call(
        op, STORE_RETRY, retryable=store_down, wait=lambda d: not shutdown.event.wait(d), on_retry=on_retry
    )


def _retry_store(op: Callable[[], _T], shutdown: Shutdown) -> _T | None:
    """Run a start-up step, waiting out an unreachable store (``None`` when stopped meanwhile)."""

    def logged(err: BaseException, delay: float) -> None:
        log.warning("store unavailable at start-up, retrying in %.1f s: %s", delay, err)

    if shutdown.event.is_set():
        return None
    try:
        return _until_stopped(op, shutdown, logged)
    except CoordinationError:
        return None


def _exit_when_idle(store: Store, shutdown: Shutdown, settings: Settings) -> None:
    """Stop the pod once every batch has finished (checked twice, a poll apart, to skip races)."""
    idle_seen = False
    while not shutdown.event.wait(settings.poll_interval):
        try:
            idle = not store.scan(keys.ACTIVE, limit=1)
        except CoordinationError:
            continue
        if idle and idle_seen:
            shutdown.request()
        idle_seen = idle


class _Heartbeat:
    def __init__(
        self, store: Store, pod: str, roles: list[Role], settings: Settings, worker: Worker | None
    ) -> None:
        self.store = store
        self.pod = pod
        self.roles = [str(r) for r in roles]
        self.settings = settings
        self.worker = worker
        self.started_at = time.time()
        self.last_ok = 0.0

    def write(self) -> None:
        unit, progress = self.worker.doing() if self.worker else (None, 0)
        beat = Heartbeat(
            pod=self.pod,
            roles=self.roles,
            at=time.time(),
            started_at=self.started_at,
            unit=unit,
            progress=progress,
            host=socket.gethostname(),
            pid=os.getpid(),
            jobs_done=self.worker.completed if self.worker else 0,
            frames_done=self.worker.frames_done if self.worker else 0,
        )
        self.store.txn(puts={keys.heartbeat(self.pod): encode(beat)})
        self.last_ok = beat.at

    def run(self, shutdown: Shutdown) -> None:
        while not shutdown.event.wait(self.settings.heartbeat_interval):
            try:
                self.write()
            except CoordinationError as err:
                log.warning("heartbeat not written: %s", err)

    def clear(self) -> None:
        try:
            self.store.txn(deletes=[keys.heartbeat(self.pod)])
        except CoordinationError as err:
            log.warning("heartbeat not removed: %s", err)


def _install_signals(shutdown: Shutdown) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        if shutdown.event.is_set():  # a second signal: give the running unit back now
            shutdown.deadline = time.monotonic()
        log.info("signal %d: stopping (running work has %.0f s)", signum, shutdown.grace)
        shutdown.request()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
