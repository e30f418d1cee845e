"""One conformance suite for every coordination store backend (SQLite, etcd, TiKV), plus the
backend-specific behaviour: failure on an unreachable server, etcd restarts, SQLite locks and
killed writers, TiKV's abort at exit, and opening stores from URLs and the environment."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from tests._servers import EtcdServer, etcd_binary, free_port
from tests.roboflow_distributed._batch_helpers import ManualClock

import roboflow_distributed.store as store_api
from roboflow_core import CoordinationError
from roboflow_distributed.liveness import Staleness
from roboflow_distributed.locks import Lease
from roboflow_distributed.store import (
    ABSENT,
    Compare,
    Entry,
    EtcdStore,
    SqliteStore,
    Store,
    open_store,
)
from roboflow_distributed.store._tikv import decode_value, encode_value

# -- the conformance suite (fixture `store`: every backend) -----------------------------------------


def put(store: Store, key: str, value: bytes) -> Entry:
    """Write ``key`` unconditionally and return the new entry."""
    assert store.txn(puts={key: value})
    return must_get(store, key)


def must_get(store: Store, key: str) -> Entry:
    """The entry at ``key``, which must exist."""
    entry = store.get(key)
    assert entry is not None, key
    return entry


def test_is_a_store(store: Store) -> None:
    assert isinstance(store, Store)
    assert store.url.split("://")[0] in store_api.SCHEMES


def test_get_absent_and_present(store: Store) -> None:
    assert store.get("jobs/a") is None
    entry = put(store, "jobs/a", b"one")
    assert entry.key == "jobs/a"
    assert entry.value == b"one"
    assert entry.version > ABSENT
    assert store.get("jobs/b") is None


def test_versions_increase_on_rewrite(store: Store) -> None:
    versions = [put(store, "k", str(i).encode()).version for i in range(4)]
    assert versions == sorted(set(versions))
    assert store.txn(deletes=["k"])
    assert store.get("k") is None
    assert put(store, "k", b"again").version > versions[-1]  # a re-created key never reuses a version


def test_scan_prefix_order_limit_and_no_leakage(store: Store) -> None:
    inside = ["jobs/b", "jobs/a", "jobs/c/1", "jobs/é", "jobs/"]
    outside = ["jobs", "jobs0", "job", "jobr", "a", "z"]
    assert store.txn(puts={key: key.encode() for key in inside + outside})
    found = store.scan("jobs/")
    assert [e.key for e in found] == sorted(inside)
    assert all(e.value == e.key.encode() and e.version > 0 for e in found)
    assert [e.key for e in store.scan("jobs/", limit=2)] == sorted(inside)[:2]
    assert store.scan("jobs/", limit=0) == []
    assert store.scan("nothing/") == []
    assert [e.key for e in store.scan("")] == sorted(inside + outside)


def test_scan_pages_through_many_keys(store: Store) -> None:
    keys = [f"many/{i:05d}" for i in range(1200)]
    for start in range(0, len(keys), 100):
        assert store.txn(puts={key: b"v" for key in keys[start : start + 100]})
    assert [e.key for e in store.scan("many/")] == keys
    assert [e.key for e in store.scan("many/", limit=1001)] == keys[:1001]


def test_txn_applies_when_compares_hold(store: Store) -> None:
    a = put(store, "a", b"1")
    assert store.txn([Compare("a", a.version), Compare("b", ABSENT)], {"a": b"2", "b": b"3"})
    after = must_get(store, "a")
    assert after.value == b"2"
    assert after.version > a.version
    assert must_get(store, "b").value == b"3"


def test_txn_applies_nothing_when_a_compare_fails(store: Store) -> None:
    a = put(store, "a", b"1")
    b = put(store, "b", b"1")
    stale = Compare("b", b.version + 1000)
    assert not store.txn([Compare("a", a.version), stale], {"a": b"2", "c": b"2"}, ["b"])
    assert store.get("a") == a
    assert store.get("b") == b
    assert store.get("c") is None
    assert not store.txn([Compare("a", ABSENT)], {"a": b"3"})
    assert store.get("a") == a


def test_absent_compare_creates_once(store: Store) -> None:
    assert store.txn([Compare("lock", ABSENT)], {"lock": b"first"})
    assert not store.txn([Compare("lock", ABSENT)], {"lock": b"second"})
    assert must_get(store, "lock").value == b"first"


def test_compare_only_txn(store: Store) -> None:
    a = put(store, "a", b"1")
    assert store.txn([Compare("a", a.version), Compare("missing", ABSENT)])
    assert not store.txn([Compare("a", ABSENT)])
    assert store.get("a") == a


def test_deletes_in_txn(store: Store) -> None:
    put(store, "d/1", b"x")
    put(store, "d/2", b"x")
    assert store.txn(deletes=["d/1", "d/missing", "d/1"])  # absent keys and repeats are fine
    assert [e.key for e in store.scan("d/")] == ["d/2"]
    d2 = store.get("d/2")
    assert d2 is not None
    assert store.txn([Compare("d/2", d2.version)], deletes=["d/2"])
    assert store.scan("d/") == []


def test_mixed_puts_and_deletes_are_atomic(store: Store) -> None:
    queued = put(store, "queue/1", b"task")
    claim = {"claims/1": b"worker-a", "workers/a": b"busy"}
    assert store.txn([Compare("queue/1", queued.version), Compare("claims/1", ABSENT)], claim, ["queue/1"])
    assert store.get("queue/1") is None
    assert {e.key: e.value for e in store.scan("")} == claim
    # the same claim again fails as a whole: the queue entry is gone
    assert not store.txn([Compare("queue/1", queued.version)], {"claims/2": b"worker-b"}, ["workers/a"])
    assert {e.key: e.value for e in store.scan("")} == claim


def test_put_and_delete_of_one_key_is_refused(store: Store) -> None:
    with pytest.raises(CoordinationError, match="both put and delete") as caught:
        store.txn(puts={"x": b"1"}, deletes=["x"])
    assert caught.value.key.endswith("x")  # (under the TiKV suite's key prefix)
    assert store.get("x") is None


def test_binary_values(store: Store) -> None:
    values = {"bin/all": bytes(range(256)), "bin/empty": b"", "bin/big": bytes(range(256)) * 400}
    assert store.txn(puts=values)
    assert {e.key: e.value for e in store.scan("bin/")} == values
    assert must_get(store, "bin/empty").value == b""


def test_usable_from_threads_and_inside_a_running_loop(store: Store) -> None:
    put(store, "k", b"v")

    async def inside_loop() -> Entry | None:
        return store.get("k")

    assert asyncio.run(inside_loop()) is not None
    results: list[Entry | None] = []
    thread = threading.Thread(target=lambda: results.append(store.get("k")))
    thread.start()
    thread.join()
    assert results == [store.get("k")]


def test_concurrent_cas_has_exactly_one_winner_per_round(store: Store) -> None:
    threads, rounds = 8, 10
    put(store, "race", b"start")
    barrier = threading.Barrier(threads)
    wins: list[list[int]] = [[] for _ in range(rounds)]
    errors: list[BaseException] = []
    versions: list[int] = []

    def contend(me: int) -> None:
        try:
            for r in range(rounds):
                barrier.wait()
                if me == 0:
                    versions.append(must_get(store, "race").version)
                barrier.wait()
                if store.txn([Compare("race", versions[r])], {"race": f"{r}:{me}".encode()}):
                    wins[r].append(me)
        except BaseException as err:
            errors.append(err)
            barrier.abort()

    workers = [threading.Thread(target=contend, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not errors
    assert [len(w) for w in wins] == [1] * rounds
    assert must_get(store, "race").value == f"{rounds - 1}:{wins[-1][0]}".encode()


def increment(url: str, key: str, times: int) -> None:
    """Add 1 to the count at ``key`` ``times`` times with compare-and-swap (a child process).

    The value is ``count:token`` so that a write whose reply was lost (a timeout on a loaded
    machine) is recognised on the next read and not counted twice.
    """
    store = open_store(url)
    try:
        for i in range(times):
            token = f"{os.getpid()}-{i}".encode()
            while True:
                try:
                    entry = store.get(key)
                    if entry is not None and entry.value.endswith(b":" + token):
                        break  # the last attempt committed although its reply was lost
                    value = int(entry.value.split(b":")[0]) if entry else 0
                    new = {key: b"%d:%s" % (value + 1, token)}
                    if store.txn([Compare(key, entry.version if entry else ABSENT)], new):
                        break
                except CoordinationError as err:
                    if not err.transient:
                        raise
                    time.sleep(0.2)
    finally:
        store.close()


def test_concurrent_increments_from_processes_are_exact(store: Store) -> None:
    if store.url.startswith("tikv://"):
        pytest.skip("the process test runs on SQLite and etcd")
    processes, times = 4, 25
    key = f"counter/{uuid.uuid4().hex}"
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=increment, args=(store.url, key, times)) for _ in range(processes)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert [child.exitcode for child in children] == [0] * processes
    assert must_get(store, key).value.split(b":")[0] == b"%d" % (processes * times)


def test_a_rewrite_of_the_same_value_gets_a_new_version(store: Store) -> None:
    # liveness watches versions, not values: a lease renewal may write the very same bytes
    versions = [put(store, "beat", b"same").version for _ in range(3)]
    assert versions == sorted(set(versions))


def test_a_lease_expires_when_it_stood_still_for_its_ttl_on_the_takers_own_clock(store: Store) -> None:
    # the two pods' clocks are 5060 s apart: only each one's own passing time counts
    holder_clock, taker_clock = ManualClock(5000.0), ManualClock(-60.0)
    holder = Lease(store, "scanner", "pod-a", 10.0, observer=Staleness(holder_clock))
    taker = Lease(store, "scanner", "pod-b", 10.0, observer=Staleness(taker_clock))
    assert holder.acquire() and holder.fencing == 1 and holder.held
    assert not taker.acquire() and taker.fencing == 0  # first sight: the lease may be fresh
    taker_clock.now += 9.0
    assert not taker.acquire()
    holder_clock.now += 9.0
    assert holder.held and holder.acquire() and holder.fencing == 1  # renewed: a new version
    taker_clock.now += 9.0
    assert not taker.acquire(), "the renewal must restart the taker's count"
    taker_clock.now += 9.9
    assert not taker.acquire()
    holder_clock.now += 10.0
    assert not holder.held, "the holder must count its lease gone ttl after its last renewal"
    taker_clock.now += 0.2
    assert taker.acquire() and taker.fencing == 2 and taker.held
    assert not holder.acquire() and not holder.held and holder.fencing == 0
    holder.release()  # not ours: nothing happens
    assert taker.acquire()
    taker.release()
    assert store.get(taker.key) is None and not taker.held
    assert holder.acquire() and holder.fencing == 1  # a free lease is taken at once


def test_closed_store_is_unusable(store: Store) -> None:
    store.close()
    store.close()
    with pytest.raises(CoordinationError, match="closed"):
        store.get("k")


# -- etcd -------------------------------------------------------------------------------------------


def test_etcd_unreachable_fails_fast_naming_the_url() -> None:
    with EtcdStore(f"127.0.0.1:{free_port()}", timeout_s=5) as store:
        for call in (lambda: store.get("k"), lambda: store.scan("k"), lambda: store.txn(puts={"k": b"v"})):
            started = time.monotonic()
            with pytest.raises(CoordinationError, match="etcd") as caught:
                call()
            assert time.monotonic() - started < 2
            assert caught.value.url == store.url


@pytest.mark.etcd
def test_etcd_store_works_again_after_the_server_restarts(tmp_path: Path) -> None:
    binary = etcd_binary()
    if binary is None:
        pytest.skip("etcd is not installed: `make test` installs it (apt-get install etcd-server)")
    server = EtcdServer(tmp_path / "etcd", binary)
    server.start()
    try:
        with EtcdStore(server.endpoint, timeout_s=3) as store:
            before = put(store, "kept", b"v")
            server.kill()
            with pytest.raises(CoordinationError, match="etcd"):
                store.get("kept")
            with pytest.raises(CoordinationError, match="etcd"):
                store.txn(puts={"lost": b"v"})
            server.start()
            assert store.get("kept") == before  # the same store object works again at once
            assert store.txn([Compare("kept", before.version)], {"kept": b"w"})
            assert store.get("lost") is None
    finally:
        server.stop()


def test_etcd_endpoints_are_checked() -> None:
    with EtcdStore(" 127.0.0.1:2379 , [::1]:2380,etcd-2 ") as store:
        assert store.url == "etcd://127.0.0.1:2379,[::1]:2380,etcd-2:2379"
    for bad in ("", "host:notaport", "host:70000", "user:secret@host:2379"):
        with pytest.raises(CoordinationError) as caught:
            EtcdStore(bad)
        assert "secret" not in str(caught.value)


# -- SQLite -----------------------------------------------------------------------------------------


def test_sqlite_creates_its_directory_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "state.db"
    with SqliteStore(path) as store:
        assert store.url == f"sqlite://{path}"
        put(store, "k", b"v")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()
    with SqliteStore(path) as again:  # reopening keeps data and versions
        assert must_get(again, "k").value == b"v"


def test_sqlite_files_are_private_and_never_followed_through_a_link(tmp_path: Path) -> None:
    path = tmp_path / "private" / "state.db"
    with SqliteStore(path) as store:
        put(store, "k", b"v")
        files = [path, path.with_name("state.db-wal"), path.with_name("state.db-shm")]
        assert {f.name: f.stat().st_mode & 0o777 for f in files} == {f.name: 0o600 for f in files}
    assert path.parent.stat().st_mode & 0o777 == 0o700
    planted = tmp_path / "elsewhere.db"
    link = tmp_path / "link.db"
    link.symlink_to(planted)
    with pytest.raises(CoordinationError, match="cannot create the store's file") as caught:
        SqliteStore(link)
    assert caught.value.url == f"sqlite://{link}"
    assert not planted.exists()


def test_sqlite_waits_for_the_lock_then_fails_clearly(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "state.db", timeout_s=0.3) as store:
        holder = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            assert store.get("k") is None  # readers are not blocked in WAL mode
            started = time.monotonic()
            with pytest.raises(CoordinationError, match="write lock"):
                store.txn(puts={"k": b"v"})
            assert time.monotonic() - started < 3
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert store.txn(puts={"k": b"v"})


def test_sqlite_survives_a_writer_killed_mid_transaction(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with SqliteStore(path) as store:
        put(store, "k", b"before")
        script = textwrap.dedent(f"""
            import sqlite3, sys, time
            conn = sqlite3.connect({str(path)!r}, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE kv SET value = x'00' WHERE key = CAST('k' AS BLOB)")
            print("locked", flush=True)
            time.sleep(60)
        """)
        writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        try:
            assert writer.stdout is not None and writer.stdout.readline().strip() == "locked"
        finally:
            writer.kill()
            writer.wait()
            if writer.stdout is not None:
                writer.stdout.close()
        assert must_get(store, "k").value == b"before"
        assert store.txn([Compare("k", must_get(store, "k").version)], {"k": b"after"})
        assert must_get(store, "k").value == b"after"


def test_sqlite_rejects_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(CoordinationError, match="SQLite") as caught:
        SqliteStore(path)
    assert caught.value.url == f"sqlite://{path}"


# -- TiKV -------------------------------------------------------------------------------------------


def test_tikv_value_encoding() -> None:
    raw = encode_value(2**40 + 7, b"\x00payload")
    assert raw[:8] == (2**40 + 7).to_bytes(8, "big")
    assert decode_value(raw, key="k", url="tikv://pd:2379") == (2**40 + 7, b"\x00payload")
    with pytest.raises(CoordinationError, match="version header"):
        decode_value(b"short", key="k", url="tikv://pd:2379")


_CONTAINMENT = """
import tikv_client  # the client itself is loaded, as in any process that uses TiKV
from roboflow_core import CoordinationError
from roboflow_distributed.store import TikvStore
try:
    TikvStore("127.0.0.1:{port}", connect_timeout_s=5)
except CoordinationError as err:
    print("contained:", err)
"""


def test_tikv_unreachable_fails_and_the_process_exits_cleanly() -> None:
    # tikv-client's tokio threads abort an exiting interpreter (PyGILState_Release, SIGABRT)
    # unless the store contains them; it is a race, so several processes try at once
    code = _CONTAINMENT.format(port=free_port())
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    for run in runs:
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        assert "contained: url=tikv://127.0.0.1:" in out
        assert "Fatal Python error" not in err


# -- open_store -------------------------------------------------------------------------------------


def test_public_api_is_sorted_and_complete() -> None:
    assert store_api.__all__ == sorted(store_api.__all__, key=lambda n: (not n.isupper(), n))
    assert all(hasattr(store_api, name) for name in store_api.__all__)


@pytest.fixture
def no_store_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No store variables in the environment; the working directory is a fresh ``tmp_path``."""
    for name in ("ROBOFLOW_STORE", "TIKV_PD_ENDPOINTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_open_sqlite_absolute_and_relative(no_store_env: Path) -> None:
    absolute = no_store_env / "abs" / "state.db"
    with closing(open_store(f"sqlite://{absolute}")) as store:
        assert isinstance(store, SqliteStore)
        assert store.path == absolute
    with closing(open_store("sqlite://rel/state.db")) as store:
        assert isinstance(store, SqliteStore)
        assert store.path == no_store_env / "rel" / "state.db"
        assert store.url == f"sqlite://{no_store_env}/rel/state.db"
    assert (no_store_env / "rel" / "state.db").is_file()


def test_open_default_is_sqlite_under_the_working_directory(no_store_env: Path) -> None:
    expected = f"sqlite://{no_store_env}/.roboflow/state.db"
    assert store_api.DEFAULT_STORE_URL == expected == store_api.default_store_url()
    store = open_store()
    try:
        assert isinstance(store, SqliteStore)
        assert store.url == expected
    finally:
        store.close()


def test_open_from_roboflow_store_env(no_store_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOFLOW_STORE", f"sqlite://{no_store_env}/env.db")
    monkeypatch.setenv("TIKV_PD_ENDPOINTS", "pd:2379")  # ROBOFLOW_STORE wins
    store = open_store()
    try:
        assert store.url == f"sqlite://{no_store_env}/env.db"
    finally:
        store.close()


def test_open_tikv_from_env_and_url(no_store_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []

    class FakeTikv:
        def __init__(self, endpoints: str, *, tls: object) -> None:
            assert tls is None
            opened.append(endpoints)

    monkeypatch.setattr("roboflow_distributed.store._tikv.TikvStore", FakeTikv)
    monkeypatch.setenv("TIKV_PD_ENDPOINTS", "pd1:2379,pd2:2379")
    assert isinstance(open_store(), FakeTikv)
    assert isinstance(open_store("TIKV://pd3:2379"), FakeTikv)
    assert opened == ["pd1:2379,pd2:2379", "pd3:2379"]


def test_open_etcd(no_store_env: Path) -> None:
    store = open_store("etcd://127.0.0.1:2379,127.0.0.2")
    try:
        assert isinstance(store, EtcdStore)
        assert store.url == "etcd://127.0.0.1:2379,127.0.0.2:2379"
    finally:
        store.close()


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("redis://host:6379", r"unknown .*'redis'.*sqlite://, etcd://, tikv://"),
        ("/just/a/path.db", r"unknown .*none.*sqlite://, etcd://, tikv://"),
        ("sqlite://", "needs a file path"),
        ("etcd://", "no store endpoint"),
        ("etcd://host:port", "bad store endpoint"),
    ],
)
def test_open_rejects_bad_urls(no_store_env: Path, url: str, match: str) -> None:
    with pytest.raises(CoordinationError, match=match):
        open_store(url)
