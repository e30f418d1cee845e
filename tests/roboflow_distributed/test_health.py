"""A pod's health and metrics endpoints, served by a running pod on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests._servers import free_port
from tests.roboflow_distributed._batch_helpers import FAST, config_text, recordings, wait_finished, wait_for

from roboflow_distributed.batches import submit_batch
from roboflow_distributed.health import HealthServer, PodView
from roboflow_distributed.runner import run_pod
from roboflow_distributed.store import SqliteStore
from roboflow_distributed.worker import Shutdown


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_health_ready_and_metrics_follow_the_pod(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    recs = recordings(tmp_path / "in", 2, base=0.3)
    spec = submit_batch(store, [str(r.path) for r in recs], config_text(), str(tmp_path / "ds"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    shutdown = Shutdown(5.0)
    pod = threading.Thread(
        target=run_pod,
        args=(store, ["all"]),
        kwargs={
            "pod": "p1",
            "settings": FAST,
            "install_signals": False,
            "shutdown": shutdown,
            "health": ("127.0.0.1", port),
        },
        daemon=True,
    )
    pod.start()
    try:
        wait_for(lambda: _reachable(base), 30, "the health server")
        wait_finished(store, spec.id)
        assert _get(f"{base}/health/live") == (200, "ok\n")
        assert _get(f"{base}/health/ready") == (200, "ok\n")
        code, body = _get(f"{base}/health")
        status = json.loads(body)
        assert code == 200 and status["pod"] == "p1" and status["live"] and status["ready"]
        assert status["roles"] == ["scanner", "reaper", "finalizer", "worker"]
        code, metrics = _get(f"{base}/metrics")
        assert code == 200
        assert "# TYPE roboflow_jobs_total counter" in metrics
        assert "# TYPE roboflow_store_errors_total counter" in metrics
        assert "roboflow_ready 1.0" in metrics
        assert "roboflow_conversions_abandoned 0.0" in metrics
        assert _get(f"{base}/nope")[0] == 404
    finally:
        shutdown.request()
        pod.join(30)
        store.close()
    assert not pod.is_alive()
    assert not _reachable(base), "the health server stops with the pod"


def _reachable(base: str) -> bool:
    try:
        return _get(f"{base}/health/live")[0] in (200, 503)
    except OSError:
        return False


def test_not_ready_when_heartbeats_stop_or_the_store_circuit_opens() -> None:
    state = {"beat": time.time(), "open": False}
    alive = threading.Thread(target=time.sleep, args=(5,), daemon=True)
    alive.start()
    view = PodView(
        pod="p",
        roles=["worker"],
        started_at=time.time(),
        heartbeat_interval=1.0,
        last_heartbeat=lambda: state["beat"],
        breaker_open=lambda: bool(state["open"]),
        threads=lambda: [alive],
        current_unit=lambda: None,
        abandoned=lambda: 0,
    )
    assert view.status()["ready"] and view.status()["live"]
    state["open"] = True
    assert not view.status()["ready"]
    state["open"], state["beat"] = False, time.time() - 10
    assert not view.status()["ready"]
    stopped = threading.Thread(target=lambda: None)
    stopped.start()
    stopped.join()
    view_dead = PodView(**{**{f: getattr(view, f) for f in view.__slots__}, "threads": lambda: [stopped]})
    assert view_dead.status()["live"] is False and view_dead.status()["stopped_threads"] == [stopped.name]
    wedged = PodView(**{**{f: getattr(view, f) for f in view.__slots__}, "abandoned": lambda: 1})
    assert wedged.status()["live"] is False and wedged.status()["abandoned_conversions_running"] == 1


def _view() -> PodView:
    return PodView(
        pod="p",
        roles=["worker"],
        started_at=time.time(),
        heartbeat_interval=60.0,
        last_heartbeat=time.time,
        breaker_open=lambda: False,
        threads=lambda: [],
        current_unit=lambda: None,
        abandoned=lambda: 0,
    )


def _request_threads() -> int:
    return sum(t.name.startswith("health-request") for t in threading.enumerate())


def test_idle_and_slow_clients_cannot_exhaust_the_health_server() -> None:
    server = HealthServer(_view(), "127.0.0.1", 0, max_threads=2, request_timeout_s=1.0).start()
    base = f"http://127.0.0.1:{server.port}"
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(10)]
    slow = socket.create_connection(("127.0.0.1", server.port))
    try:
        started = time.monotonic()
        for byte in b"GET /health/live HTTP/1.0\r\nX-Slow: " + b"x" * 40:  # never ends its headers
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                break  # the server cut it off
            assert _request_threads() <= 2
            if time.monotonic() - started > 4:
                break
            time.sleep(0.1)
        assert time.monotonic() - started < 3, "a client trickling bytes is cut off at its deadline"
        # the idle connections were dropped (closed at once, or at their deadline): answers flow again
        wait_for(lambda: _try_get(f"{base}/health/live") == 200, 5, "an answer past the idle clients")
        for sock in idle:
            sock.settimeout(5)
            assert sock.recv(1) == b"", "every idle connection was closed by the server"
        assert _request_threads() <= 2
    finally:
        for sock in [*idle, slow]:
            sock.close()
        server.stop()
    assert _request_threads() == 0


def _try_get(url: str) -> int | None:
    try:
        return _get(url)[0]
    except OSError:
        return None
