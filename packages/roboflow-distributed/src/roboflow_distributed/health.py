"""A pod's health and metrics over HTTP (``/health/live``, ``/health/ready``, ``/health``, ``/metrics``).

- ``/health/live``: 200 while every role thread of the pod is running (503 if one died) and no
  conversion the worker abandoned (stalled, see :mod:`roboflow_distributed.watchdog`) is still
  stuck in its thread: a restart frees what it holds.
- ``/health/ready``: 200 while the pod reaches the store: its last heartbeat was written within
  three heartbeat intervals and the store's circuit breaker is closed (503 otherwise).
- ``/health``: both, with details, as JSON.
- ``/metrics``: the process's OpenTelemetry metrics in Prometheus format
  (:func:`roboflow_core.telemetry.metrics_exposition`; the series are listed in
  :mod:`roboflow_distributed.metrics`).

Started by ``roboflow run --health-port`` (env ``HEALTH_PORT``, ``HEALTH_HOST``), as the original
served them on ``0.0.0.0:8080``.

The server cannot be exhausted by slow or idle clients: a fixed pool of threads answers (a
connection that finds them all busy is closed at once), each connection gets
``request_timeout_s`` in all to send its request and take the answer (its socket is shut down at
that deadline, however slowly it trickles bytes), and one connection carries one request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from roboflow_core import telemetry

__all__ = ["HealthServer", "PodView"]

log = logging.getLogger("roboflow.health")


@dataclass(frozen=True, slots=True)
class PodView:
    """What the endpoints report, read live from the running pod."""

    pod: str
    roles: Sequence[str]
    started_at: float
    heartbeat_interval: float
    last_heartbeat: Callable[[], float]
    breaker_open: Callable[[], bool]
    threads: Callable[[], Sequence[threading.Thread]]
    current_unit: Callable[[], str | None]
    abandoned: Callable[[], int]

    def status(self) -> dict[str, Any]:
        """The ``/health`` document."""
        now = time.time()
        age = now - self.last_heartbeat()
        dead = [t.name for t in self.threads() if not t.is_alive()]
        abandoned = self.abandoned()
        ready = age <= 3 * self.heartbeat_interval and not self.breaker_open()
        return {
            "pod": self.pod,
            "roles": list(self.roles),
            "live": not dead and not abandoned,
            "ready": ready,
            "stopped_threads": dead,
            "heartbeat_age_s": round(age, 3),
            "store_circuit_open": self.breaker_open(),
            "uptime_s": round(now - self.started_at, 3),
            "unit": self.current_unit(),
            "abandoned_conversions_running": abandoned,
        }

    def metrics(self, accept: str | None = None) -> tuple[bytes, str]:
        """The ``/metrics`` document and its content type (see :func:`telemetry.metrics_exposition`)."""
        return telemetry.metrics_exposition(accept)


class HealthServer:
    """Serves a :class:`PodView` on ``host:port`` from a daemon thread until :meth:`stop`.

    Args:
        view: What to report.
        host: The address to listen on.
        port: The port (0: any free one, see :attr:`port`).
        max_threads: Connections answered at once; more are closed at once.
        request_timeout_s: How long one connection may take in all.
    """

    def __init__(
        self,
        view: PodView,
        host: str,
        port: int,
        *,
        max_threads: int = 4,
        request_timeout_s: float = 5.0,
    ) -> None:
        handler = _handler(view, request_timeout_s)
        self._server = _BoundedServer((host, port), handler, max_threads, request_timeout_s)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve, name="health", daemon=True)

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health and metrics on port %d", self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server.cut(float("inf"))  # connections still open end now
        self._server.pool.shutdown(wait=True, cancel_futures=True)


class _BoundedServer(HTTPServer):
    """An HTTP server with a fixed pool of threads and a deadline on every connection."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        max_threads: int,
        request_timeout_s: float,
    ) -> None:
        super().__init__(address, handler)
        self.request_timeout_s = request_timeout_s
        self.pool = ThreadPoolExecutor(max_threads, thread_name_prefix="health-request")
        self._free = threading.BoundedSemaphore(max_threads)
        self._deadlines: dict[socket.socket, float] = {}
        self._lock = threading.Lock()

    def serve(self) -> None:
        self.serve_forever(poll_interval=0.1)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._free.acquire(blocking=False):
            self.shutdown_request(request)  # every thread is busy: drop it rather than queue it
            return
        with self._lock:
            self._deadlines[request] = time.monotonic() + self.request_timeout_s
        self.pool.submit(self._answer, request, client_address)

    def _answer(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self._lock:
                self._deadlines.pop(request, None)
            self.shutdown_request(request)
            self._free.release()

    def service_actions(self) -> None:
        """Between polls: cut off connections past their deadline (their thread then ends)."""
        self.cut(time.monotonic())

    def cut(self, now: float) -> None:
        """Shut down the sockets of connections whose deadline is at or before ``now``."""
        with self._lock:
            late = [sock for sock, deadline in self._deadlines.items() if deadline <= now]
        for sock in late:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("health request from %s failed", client_address, exc_info=True)


def _handler(view: PodView, timeout_s: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = timeout_s  # per read and write; the server's deadline bounds the whole connection

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/metrics":
                self._send(200, *view.metrics(self.headers.get("Accept")))
                return
            status = view.status()
            checks = {"/health/live": status["live"], "/health/ready": status["ready"]}
            if path in checks:
                self._send(
                    200 if checks[path] else 503, "ok\n" if checks[path] else "unavailable\n", "text/plain"
                )
            elif path == "/health":
                ok = status["live"] and status["ready"]
                self._send(200 if ok else 503, json.dumps(status) + "\n", "application/json")
            else:
                self._send(
                    404, "not found: try /health, /health/live, /health/ready, /metrics\n", "text/plain"
                )

        def _send(self, code: int, body: str | bytes, kind: str) -> None:
            data = body if isinstance(body, bytes) else body.encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    return Handler
