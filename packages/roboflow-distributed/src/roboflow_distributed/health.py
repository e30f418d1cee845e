"""A pod's health and metrics over HTTP (``/health/live``, ``/health/ready``, ``/health``, ``/metrics``).

- ``/health/live``: 200 while every role thread of the pod is running (503 if one died).
- ``/health/ready``: 200 while the pod reaches the store: its last heartbeat was written within
  three heartbeat intervals and the store's circuit breaker is closed (503 otherwise).
- ``/health``: both, with details, as JSON.
- ``/metrics``: Prometheus text format: units converted and failed, store errors, heartbeat age.

Started by ``roboflow run --health-port`` (env ``HEALTH_PORT``, ``HEALTH_HOST``), as the original
served them on ``0.0.0.0:8080``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
    store_errors: Callable[[], int]
    threads: Callable[[], Sequence[threading.Thread]]
    units_completed: Callable[[], int]
    units_failed: Callable[[], int]
    current_unit: Callable[[], str | None]

    def status(self) -> dict[str, Any]:
        """The ``/health`` document."""
        now = time.time()
        age = now - self.last_heartbeat()
        dead = [t.name for t in self.threads() if not t.is_alive()]
        ready = age <= 3 * self.heartbeat_interval and not self.breaker_open()
        return {
            "pod": self.pod,
            "roles": list(self.roles),
            "live": not dead,
            "ready": ready,
            "stopped_threads": dead,
            "heartbeat_age_s": round(age, 3),
            "store_circuit_open": self.breaker_open(),
            "uptime_s": round(now - self.started_at, 3),
            "unit": self.current_unit(),
        }

    def metrics(self) -> str:
        """The ``/metrics`` document (Prometheus text exposition format 0.0.4)."""
        pod = self.pod.replace("\\", "\\\\").replace('"', '\\"')
        rows = [
            (
                "roboflow_units_completed_total",
                "counter",
                "Units converted by this pod",
                self.units_completed(),
            ),
            ("roboflow_units_failed_total", "counter", "Unit conversions that failed", self.units_failed()),
            (
                "roboflow_store_errors_total",
                "counter",
                "Coordination store calls that failed",
                self.store_errors(),
            ),
            (
                "roboflow_heartbeat_age_seconds",
                "gauge",
                "Seconds since the last heartbeat",
                time.time() - self.last_heartbeat(),
            ),
            ("roboflow_ready", "gauge", "1 when the pod reaches its store", int(self.status()["ready"])),
        ]
        lines = []
        for name, kind, text, value in rows:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f'{name}{{pod="{pod}"}} {value}']
        return "\n".join(lines) + "\n"


class HealthServer:
    """Serves a :class:`PodView` on ``host:port`` from a daemon thread until :meth:`stop`."""

    def __init__(self, view: PodView, host: str, port: int) -> None:
        handler = _handler(view)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health and metrics on port %d", self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _handler(view: PodView) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/metrics":
                self._send(200, view.metrics(), "text/plain; version=0.0.4")
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

        def _send(self, code: int, body: str, kind: str) -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    return Handler
