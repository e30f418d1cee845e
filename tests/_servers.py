"""Servers for tests that need them, started on 127.0.0.1 and stopped by their fixtures.

A pytest plugin module: a ``conftest.py`` imports the fixtures it needs from here.

* :func:`moto_server` (session): a real S3 API server (moto) on a free loopback port; the
  process's environment then holds the test credentials (``AWS_*``, as pods get theirs) and
  allows plain HTTP to it (``ROBOFLOW_ALLOWED_ENDPOINTS``).
* :func:`s3_bucket`: a fresh, empty bucket on it, with the ``s3://`` URL that reaches it.
* :func:`fault_proxy`: a factory of :class:`FaultProxy` reverse proxies in front of moto that
  answer some requests with an error status or drop the connection, for retry tests.
* :class:`EtcdServer`: a single-member etcd (Debian ``etcd-server``) on free loopback ports that
  can be killed and started again on the same ports and data; :func:`etcd_server` (session) runs
  one and :func:`etcd_clean` empties it before a test. :func:`etcd_secure_server` (session) runs
  one with TLS (certificates from :mod:`tests._tls`, client certificates required) and auth.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import msgspec
import pytest
from tests._tls import Pki

Fault = int | Literal["drop"]
"""An HTTP status to answer with, or ``"drop"`` to close the connection without an answer."""
Schedule = Callable[[int, str, str], Fault | None]
"""Decides the fault (or none) for the ``n``-th request (from 0), given its method and path."""

TEST_REGION = "us-east-1"
TEST_ACCESS_KEY = "AKIDTESTROBOFLOW"
TEST_SECRET = "roboflow-test-secret-never-shown"
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"})
_bucket_ids = itertools.count()


class S3Bucket(msgspec.Struct, frozen=True, kw_only=True):
    """A bucket on a test server.

    Attributes:
        endpoint: ``http://127.0.0.1:PORT`` of the server.
        name: The bucket name.
    """

    endpoint: str
    name: str

    def url(self, prefix: str = "", *, endpoint: str | None = None) -> str:
        """The ``s3://`` URL of ``prefix`` in this bucket, with its endpoint (an allowed one: see
        :func:`allow_endpoint`); credentials come from the environment."""
        query = f"endpoint={endpoint or self.endpoint}&region={TEST_REGION}"
        return f"s3://{self.name}/{prefix.strip('/')}?{query}"


def allow_endpoint(endpoint: str) -> Callable[[], None]:
    """Add ``endpoint`` to ``ROBOFLOW_ALLOWED_ENDPOINTS``; returns what takes it out again."""
    before = os.environ.get("ROBOFLOW_ALLOWED_ENDPOINTS")
    os.environ["ROBOFLOW_ALLOWED_ENDPOINTS"] = ",".join(e for e in (before, endpoint) if e)

    def restore() -> None:
        if before is None:
            os.environ.pop("ROBOFLOW_ALLOWED_ENDPOINTS", None)
        else:
            os.environ["ROBOFLOW_ALLOWED_ENDPOINTS"] = before

    return restore


def server_environment(endpoint: str) -> dict[str, str]:
    """The environment a process needs to reach the test server at ``endpoint``."""
    return {
        "AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": TEST_SECRET,
        "AWS_REGION": TEST_REGION,
        "AWS_ENDPOINT_URL": endpoint,
    }


def create_bucket(endpoint: str, name: str) -> S3Bucket:
    """Create bucket ``name`` on the S3 server at ``endpoint`` (moto needs no signature)."""
    with urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{name}", method="PUT")):
        pass
    return S3Bucket(endpoint=endpoint, name=name)


def multipart_uploads(bucket: S3Bucket) -> list[str]:
    """Keys of the multipart uploads in progress (neither completed nor aborted) in ``bucket``."""
    with urllib.request.urlopen(f"{bucket.endpoint}/{bucket.name}?uploads") as answer:
        return re.findall(r"<Key>([^<]*)</Key>", answer.read().decode())


def first_n(count: int, fault: Fault = 503) -> Schedule:
    """A schedule that faults the first ``count`` requests."""
    return lambda n, _method, _path: fault if n < count else None


def every_kth(k: int, fault: Fault = 503) -> Schedule:
    """A schedule that faults every ``k``-th request (the 1st, ``k+1``-th, ...)."""
    return lambda n, _method, _path: fault if n % k == 0 else None


def always(fault: Fault = 503) -> Schedule:
    """A schedule that faults every request."""
    return lambda _n, _method, _path: fault


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        body = self._body()
        fault = self.server.next_fault(self.command, self.path)
        if fault == "drop":
            self.close_connection = True
            return
        if fault is not None:
            self._answer(fault, {"Content-Type": "application/xml"}, _error_xml(fault))
            return
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            kept = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            self._answer(response.status, kept, data)
        finally:
            upstream.close()

    def _answer(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        if self.command != "HEAD":  # a HEAD answer keeps the object's Content-Length
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
            headers["Content-Length"] = str(len(data))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


def _error_xml(status: int) -> bytes:
    code = {403: "AccessDenied", 500: "InternalError", 503: "SlowDown"}.get(status, "InternalError")
    return f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>injected</Message></Error>".encode()


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, schedule: Schedule) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = upstream
        self.schedule = schedule
        self.requests = 0
        self.faults = 0
        self._lock = threading.Lock()

    def next_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            fault = self.schedule(self.requests, method, path)
            self.requests += 1
            self.faults += fault is not None
        return fault


class FaultProxy:
    """A reverse proxy on 127.0.0.1 in front of an S3 server that injects faults.

    Args:
        upstream: ``http://host:port`` of the real server.
        schedule: Which requests fail and how (see :func:`first_n`, :func:`every_kth`).
    """

    def __init__(self, upstream: str, schedule: Schedule) -> None:
        self._server = _ProxyServer(urlsplit(upstream).netloc, schedule)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` of the proxy."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> int:
        """Requests seen so far."""
        return self._server.requests

    @property
    def faults(self) -> int:
        """Requests answered with a fault so far."""
        return self._server.faults

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 for the session; yields its endpoint URL.

    While it runs, the environment holds the test credentials and allows plain HTTP to it.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    saved = dict(os.environ)
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        os.environ.update(server_environment(endpoint))
        allow_endpoint(endpoint)
        yield endpoint
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


@pytest.fixture
def s3_bucket(moto_server: str) -> S3Bucket:
    """A new, empty bucket on the session's moto server."""
    return create_bucket(moto_server, f"roboflow-test-{next(_bucket_ids)}")


@pytest.fixture
def fault_proxy(moto_server: str) -> Iterator[Callable[[Schedule], FaultProxy]]:
    """Start fault proxies in front of moto with a given schedule; all are stopped after the test."""
    started: list[FaultProxy] = []

    restores: list[Callable[[], None]] = []

    def start(schedule: Schedule) -> FaultProxy:
        proxy = FaultProxy(moto_server, schedule)
        started.append(proxy)
        restores.append(allow_endpoint(proxy.endpoint))
        return proxy

    yield start
    for restore in reversed(restores):
        restore()
    for proxy in started:
        proxy.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EtcdServer:
    """A single-member etcd server on 127.0.0.1 with its own data directory.

    Args:
        data_dir: Where etcd keeps its data (and this class its log); reused by :meth:`start`.
        binary: The ``etcd`` executable.
    """

    def __init__(
        self, data_dir: Path, binary: str = "etcd", *, pki: Pki | None = None, auth_token_ttl_s: int = 300
    ) -> None:
        self.data_dir = data_dir
        self.binary = binary
        self.pki = pki
        self.auth_token_ttl_s = auth_token_ttl_s
        self.client_port = free_port()
        self.peer_port = free_port()
        self.log_path = data_dir.with_name(data_dir.name + ".log")
        self.root_password: str | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT`` of the client URL."""
        return f"127.0.0.1:{self.client_port}"

    @property
    def url(self) -> str:
        """The store URL, ``etcd://127.0.0.1:PORT``."""
        return f"etcd://{self.endpoint}"

    def start(self, timeout_s: float = 20.0) -> None:
        """Start etcd (again: same ports, same data) and wait until it reports healthy."""
        if self._process is not None and self._process.poll() is None:
            return
        client = f"{self._scheme}://{self.endpoint}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        command = [
            self.binary,
            "--name=test",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=test={peer}",
            f"--auth-token-ttl={self.auth_token_ttl_s}",
            "--logger=zap",
            "--log-level=error",
        ]
        if self.pki is not None:
            command += [
                f"--cert-file={self.pki.server_cert}",
                f"--key-file={self.pki.server_key}",
                f"--trusted-ca-file={self.pki.ca}",
                "--client-cert-auth",
            ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not self._healthy():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"etcd did not become healthy on {self.endpoint}:\n{tail}")
            time.sleep(0.05)

    @property
    def _scheme(self) -> str:
        return "http" if self.pki is None else "https"

    def _healthy(self) -> bool:
        try:
            return bool(self._gateway("/health", None).get("health") == "true")
        except (OSError, ValueError):
            return False

    def _gateway(
        self, path: str, body: dict[str, object] | None, token: str | None = None
    ) -> dict[str, object]:
        """Call etcd's HTTP API (JSON gateway) at ``path``; the decoded answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self._scheme}://{self.endpoint}{path}", data=data)
        if token is not None:
            request.add_header("Authorization", token)
        context = None if self.pki is None else self.pki.client_context()
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as answer:
                found: dict[str, object] = json.loads(answer.read())
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"etcd {path}: HTTP {err.code}: {err.read()[:500]!r}") from err
        return found

    def enable_auth(self, root_password: str, user: str, password: str) -> None:
        """Turn on etcd auth: a ``root`` user, and ``user`` with read-write access to every key."""
        every_key = {"key": "AA==", "range_end": "AA=="}  # "\0".."\0"
        for path, body in (
            ("/v3/auth/user/add", {"name": "root", "password": root_password}),
            ("/v3/auth/user/grant", {"user": "root", "role": "root"}),
            ("/v3/auth/role/add", {"name": "roboflow"}),
            ("/v3/auth/role/grant", {"name": "roboflow", "perm": {"permType": "READWRITE", **every_key}}),
            ("/v3/auth/user/add", {"name": user, "password": password}),
            ("/v3/auth/user/grant", {"user": user, "role": "roboflow"}),
            ("/v3/auth/enable", {}),
        ):
            self._gateway(path, body)
        self.root_password = root_password

    def kill(self) -> None:
        """SIGKILL the server (no clean shutdown) and reap it."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL after 5 s)."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def wipe(self) -> None:
        """Delete every key (through etcd's JSON gateway, as ``root`` once auth is on)."""
        token = None
        if self.root_password is not None:
            answer = self._gateway("/v3/auth/authenticate", {"name": "root", "password": self.root_password})
            token = str(answer["token"])
        self._gateway("/v3/kv/deleterange", {"key": "AA==", "range_end": "AA=="}, token)  # every key


def etcd_binary() -> str | None:
    """The ``etcd`` executable (``$ETCD_BIN``, PATH, or Debian's /usr/bin/etcd), if installed."""
    found = os.environ.get("ETCD_BIN") or shutil.which("etcd")
    if found:
        return found
    return "/usr/bin/etcd" if Path("/usr/bin/etcd").is_file() else None


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """An etcd server on 127.0.0.1 for the session (skipped, with the reason, without etcd)."""
    binary = etcd_binary()
    if binary is None:
        pytest.skip("etcd is not installed: `make test` installs it (apt-get install etcd-server)")
    server = EtcdServer(tmp_path_factory.mktemp("etcd") / "data", binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


ETCD_TEST_USER = "roboflow"
ETCD_TEST_PASSWORD = "etcd-test-password-never-shown"


def start_secure_etcd(directory: Path, binary: str, *, auth_token_ttl_s: int = 300) -> EtcdServer:
    """An etcd with TLS (client certificates required) and auth on (:data:`ETCD_TEST_USER`)."""
    from tests._tls import make_pki

    server = EtcdServer(
        directory / "data", binary, pki=make_pki(directory / "pki"), auth_token_ttl_s=auth_token_ttl_s
    )
    server.start()
    try:
        server.enable_auth("root-" + ETCD_TEST_PASSWORD, ETCD_TEST_USER, ETCD_TEST_PASSWORD)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def etcd_secure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """An etcd server with TLS and auth on 127.0.0.1 for the session (see :func:`start_secure_etcd`)."""
    binary = etcd_binary()
    if binary is None:
        pytest.skip("etcd is not installed: `make test` installs it (apt-get install etcd-server)")
    server = start_secure_etcd(tmp_path_factory.mktemp("etcd-secure"), binary)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def etcd_clean(etcd_server: EtcdServer) -> EtcdServer:
    """The session's etcd server with no keys in it."""
    etcd_server.wipe()
    return etcd_server
