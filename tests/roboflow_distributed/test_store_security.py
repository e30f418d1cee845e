"""TLS and password auth of the networked stores: a real etcd with certificates the test makes
(the conformance suite also runs on it, as ``store[etcd-tls-auth]``), the URL and environment
options, and TiKV's refusal of TLS it cannot do."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tests._servers import ETCD_TEST_PASSWORD, ETCD_TEST_USER, EtcdServer, etcd_binary, start_secure_etcd
from tests._tls import make_pki

from roboflow_core import CoordinationError
from roboflow_distributed.store import EtcdStore, TikvStore, open_store
from roboflow_distributed.store._security import Credentials, TlsFiles, parse_store_query

pytestmark = pytest.mark.etcd

_ETCD_VARS = (
    "ROBOFLOW_ETCD_CA_PATH",
    "ROBOFLOW_ETCD_CERT_PATH",
    "ROBOFLOW_ETCD_KEY_PATH",
    "ROBOFLOW_ETCD_USER",
    "ROBOFLOW_ETCD_PASSWORD",
)


@pytest.fixture
def no_security_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*_ETCD_VARS, "TIKV_CA_PATH", "TIKV_CERT_PATH", "TIKV_KEY_PATH"):
        monkeypatch.delenv(name, raising=False)


def _tls(server: EtcdServer) -> TlsFiles:
    assert server.pki is not None
    return TlsFiles(server.pki.ca, server.pki.client_cert, server.pki.client_key)


def test_secure_etcd_refuses_plaintext_missing_certificates_and_no_login(
    etcd_secure_server: EtcdServer,
) -> None:
    pki = etcd_secure_server.pki
    assert pki is not None
    login = Credentials(ETCD_TEST_USER, ETCD_TEST_PASSWORD)
    attempts = {
        "plaintext": EtcdStore(etcd_secure_server.endpoint, timeout_s=2, credentials=login),
        "no client certificate": EtcdStore(
            etcd_secure_server.endpoint, timeout_s=2, tls=TlsFiles(ca=pki.ca), credentials=login
        ),
        "no login": EtcdStore(etcd_secure_server.endpoint, timeout_s=2, tls=_tls(etcd_secure_server)),
    }
    for what, store in attempts.items():
        with store, pytest.raises(CoordinationError, match="etcd") as caught:
            store.txn(puts={"k": b"v"})
        assert caught.value.url == store.url, what
    with EtcdStore(etcd_secure_server.endpoint, tls=_tls(etcd_secure_server), credentials=login) as store:
        assert store.get("k") is None  # none of the refused writes got through
        assert store.txn(puts={"k": b"v"})


def test_wrong_password_is_an_error_that_never_shows_a_password(etcd_secure_server: EtcdServer) -> None:
    wrong = "wrong-" + ETCD_TEST_PASSWORD
    store = EtcdStore(
        etcd_secure_server.endpoint,
        timeout_s=3,
        tls=_tls(etcd_secure_server),
        credentials=Credentials(ETCD_TEST_USER, wrong),
    )
    with store, pytest.raises(CoordinationError, match="authentication failed") as caught:
        store.get("k")
    shown = " ".join([str(caught.value), repr(store), store.url, repr(Credentials(ETCD_TEST_USER, wrong))])
    assert ETCD_TEST_PASSWORD not in shown


def test_an_expired_token_is_renewed(tmp_path: Path) -> None:
    binary = etcd_binary()
    if binary is None:
        pytest.skip("etcd is not installed: `make test` installs it (apt-get install etcd-server)")
    server = start_secure_etcd(tmp_path, binary, auth_token_ttl_s=1)
    login = Credentials(ETCD_TEST_USER, ETCD_TEST_PASSWORD)
    try:
        with EtcdStore(server.endpoint, timeout_s=5, tls=_tls(server), credentials=login) as store:
            assert store.txn(puts={"k": b"1"})
            time.sleep(2.5)  # the token has expired: etcd answers "invalid auth token"
            assert store.txn(puts={"k": b"2"})
            time.sleep(2.5)
            entry = store.get("k")
            assert entry is not None and entry.value == b"2"
    finally:
        server.stop()


def test_open_store_takes_url_options_and_the_environment(
    etcd_secure_server: EtcdServer, monkeypatch: pytest.MonkeyPatch, no_security_env: None
) -> None:
    pki = etcd_secure_server.pki
    assert pki is not None
    monkeypatch.setenv("ROBOFLOW_ETCD_PASSWORD", ETCD_TEST_PASSWORD)
    monkeypatch.setenv("ROBOFLOW_ETCD_CA_PATH", str(pki.ca))
    query = f"cert={pki.client_cert}&key={pki.client_key}&user={ETCD_TEST_USER}"
    store = open_store(f"{etcd_secure_server.url}?{query}")
    try:
        assert store.url == etcd_secure_server.url  # options are not part of the shown URL
        assert store.txn(puts={"from-url": b"v"})
        assert store.get("from-url") is not None
        assert store.txn(deletes=["from-url"])
    finally:
        store.close()


def test_store_options_are_checked(tmp_path: Path, no_security_env: None) -> None:
    env = {"ROBOFLOW_ETCD_PASSWORD": "secret-pw"}
    cases = {
        "password=secret-pw": "must not carry the password: set ROBOFLOW_ETCD_PASSWORD",
        "tls=1": "unknown etcd:// URL option 'tls'",
        "user=a&user=b": "given twice",
        f"cert={tmp_path}/c.pem": "needs its key",
        "user=": "needs both a user",
    }
    for query, match in cases.items():
        with pytest.raises(CoordinationError, match=match) as caught:
            parse_store_query("etcd", query, env)
        assert "secret-pw" not in str(caught.value)
    with pytest.raises(CoordinationError, match="needs both a user"):
        parse_store_query("etcd", "user=someone", {})
    chosen = parse_store_query(
        "etcd", "user=url-user", {"ROBOFLOW_ETCD_USER": "env-user", "ROBOFLOW_ETCD_PASSWORD": "pw"}
    )
    assert chosen.credentials == Credentials("url-user", "pw") and chosen.tls is None
    assert parse_store_query("tikv", "", {"TIKV_CA_PATH": "/ca.pem"}).tls == TlsFiles(ca=Path("/ca.pem"))
    with pytest.raises(CoordinationError, match="unknown tikv:// URL option 'user'"):
        parse_store_query("tikv", "user=x", {})
    with pytest.raises(CoordinationError, match=r"cannot read the TLS CA file .*missing\.pem"):
        EtcdStore("127.0.0.1:2379", tls=TlsFiles(ca=tmp_path / "missing.pem"))


def test_tikv_tls_is_refused_not_downgraded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_security_env: None
) -> None:
    pki = make_pki(tmp_path / "pki")
    monkeypatch.setenv("TIKV_CA_PATH", str(pki.ca))
    monkeypatch.setenv("TIKV_CERT_PATH", str(pki.client_cert))
    monkeypatch.setenv("TIKV_KEY_PATH", str(pki.client_key))
    with pytest.raises(CoordinationError, match="refusing to connect in plaintext"):
        open_store("tikv://127.0.0.1:2379")
    monkeypatch.setenv("TIKV_CA_PATH", str(tmp_path / "gone.pem"))
    with pytest.raises(CoordinationError, match=r"cannot read the TLS CA file .*gone\.pem"):
        TikvStore("127.0.0.1:2379", tls=parse_store_query("tikv", "").tls)
