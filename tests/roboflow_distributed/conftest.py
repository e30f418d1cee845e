"""Stores for the conformance suite: SQLite on a temporary file, etcd on a local server, and TiKV
when ``ROBOFLOW_TEST_TIKV_PD`` names a PD endpoint (no TiKV server can be installed here)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from tests._servers import (
    ETCD_TEST_PASSWORD,
    ETCD_TEST_USER,
    EtcdServer,
    etcd_clean,
    etcd_secure_server,
    etcd_server,
)

from roboflow_distributed.store import Compare, Entry, EtcdStore, SqliteStore, Store, open_store

__all__ = [
    "TIKV_ENV",
    "PrefixedStore",
    "etcd_clean",
    "etcd_secure_server",
    "etcd_server",
    "secure_etcd_env",
    "store",
]

TIKV_ENV = "ROBOFLOW_TEST_TIKV_PD"
TIKV_SKIP = f"set {TIKV_ENV}=host:port to run the TiKV conformance suite"


class PrefixedStore:
    """A store seen under a key prefix, so tests on a shared cluster (TiKV) do not collide.

    Args:
        inner: The store.
        prefix: Prepended to every key; removed from the keys it returns.
    """

    def __init__(self, inner: Store, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix
        self.url = inner.url
        self.closed = False

    def get(self, key: str) -> Entry | None:
        """The entry at ``key`` under the prefix."""
        entry = self.inner.get(self.prefix + key)
        return None if entry is None else self._strip(entry)

    def scan(self, prefix: str, *, limit: int | None = None) -> list[Entry]:
        """Entries under the prefix whose key starts with ``prefix``."""
        return [self._strip(e) for e in self.inner.scan(self.prefix + prefix, limit=limit)]

    def txn(
        self,
        compares: Sequence[Compare] = (),
        puts: Mapping[str, bytes] | None = None,
        deletes: Iterable[str] = (),
    ) -> bool:
        """The inner transaction on prefixed keys."""
        return self.inner.txn(
            [Compare(self.prefix + c.key, c.version) for c in compares],
            {self.prefix + k: v for k, v in (puts or {}).items()},
            [self.prefix + k for k in deletes],
        )

    def close(self) -> None:
        """Delete every key under the prefix, then close the inner store. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        try:
            while keys := [e.key for e in self.inner.scan(self.prefix, limit=100)]:
                self.inner.txn(deletes=keys)
        finally:
            self.inner.close()

    def _strip(self, entry: Entry) -> Entry:
        return Entry(entry.key.removeprefix(self.prefix), entry.value, entry.version)


def secure_etcd_env(server: EtcdServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the ``ROBOFLOW_ETCD_*`` variables at ``server``'s client certificate and test user."""
    assert server.pki is not None
    for name, value in {
        "ROBOFLOW_ETCD_CA_PATH": server.pki.ca,
        "ROBOFLOW_ETCD_CERT_PATH": server.pki.client_cert,
        "ROBOFLOW_ETCD_KEY_PATH": server.pki.client_key,
        "ROBOFLOW_ETCD_USER": ETCD_TEST_USER,
        "ROBOFLOW_ETCD_PASSWORD": ETCD_TEST_PASSWORD,
    }.items():
        monkeypatch.setenv(name, str(value))


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("etcd", marks=pytest.mark.etcd),
        pytest.param("etcd-tls-auth", marks=pytest.mark.etcd),
        "tikv",
    ],
)
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """An empty store of each backend; closed after the test.

    ``etcd-tls-auth`` is etcd with TLS, client certificates and password auth, opened by
    ``open_store`` from the ``ROBOFLOW_ETCD_*`` variables (which child processes inherit).
    """
    opened: Store
    if request.param == "sqlite":
        opened = SqliteStore(tmp_path / "state.db")
    elif request.param == "etcd":
        server: EtcdServer = request.getfixturevalue("etcd_clean")
        opened = EtcdStore(server.endpoint, timeout_s=5)
    elif request.param == "etcd-tls-auth":
        server = request.getfixturevalue("etcd_secure_server")
        server.wipe()
        secure_etcd_env(server, monkeypatch)
        opened = open_store(server.url)
    else:
        endpoints = os.environ.get(TIKV_ENV, "").strip()
        if not endpoints:
            pytest.skip(TIKV_SKIP)
        from roboflow_distributed.store import TikvStore

        opened = PrefixedStore(TikvStore(endpoints), f"roboflow-test/{uuid.uuid4().hex}/")
    try:
        yield opened
    finally:
        opened.close()
