"""A real ``roboflow ui`` and real ``roboflow run`` pods as subprocesses on 127.0.0.1 (console tests)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests._servers import free_port
from tests.roboflow_distributed._batch_helpers import FAST_ENV

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_CHROMIUM = "Debian's chromium is not installed (make test installs it: make system-deps)"
_CLI = [sys.executable, "-c", "from roboflow_cli.main import cli; cli()"]


def cli_process(
    args: Sequence[str], store: str, log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``roboflow ARGS`` on the coordination store ``store`` in a subprocess (fast pod timings and
    ``env`` added to the environment), its output into ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [*_CLI, *args],
            env={**os.environ, **FAST_ENV, **(env or {}), "ROBOFLOW_STORE": store},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL when it does not stop in ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class UiServer:
    """``roboflow ui`` on a free loopback port, stopped by :meth:`stop`.

    Args:
        store: The coordination store URL.
        workdir: Where its log goes (``ui.log``).
        token: ``ROBOFLOW_UI_TOKEN`` for it, if any.
    """

    def __init__(self, store: str, workdir: Path, *, token: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "ui.log"
        args = ["ui", "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = cli_process(args, store, self.log, {"ROBOFLOW_UI_TOKEN": token or ""})
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"roboflow ui exited: {self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"roboflow ui did not answer in {timeout} s: {self.log.read_text()}")

    def request(
        self,
        method: str,
        path: str,
        body: object | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """``(status, headers, body)`` of one request (errors are answers too)."""
        data = json.dumps(body).encode() if body is not None else None
        sent = {"Content-Type": "application/json"} if data is not None else {}
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={**sent, **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, dict(answer.headers), answer.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def json(self, method: str, path: str, body: object | None = None, **headers: str) -> tuple[int, Any]:
        """``(status, parsed JSON body)`` of one request."""
        status, _, raw = self.request(method, path, body, headers)
        return status, json.loads(raw) if raw else None

    def stop(self) -> None:
        stop(self.process)
