"""The embedded coordination store: one SQLite file in WAL mode.

Many processes on one machine share the file; each process keeps a small pool of connections so
its threads can use the store at once. A transaction takes the write lock up front
(``BEGIN IMMEDIATE``), so two writers never deadlock on a lock upgrade; a writer that finds the lock
taken waits (SQLite's busy timeout) and then retries with backoff until ``timeout_s`` is spent.

Versions work like etcd's ``mod_revision``: a global revision counter, bumped by every transaction
that writes, is stored with each key it puts. All state is in the database, and WAL recovers from a
process killed in the middle of a transaction (its transaction is simply not there).

The file must be on a local file system: WAL needs shared memory, which network file systems do not
provide. Use etcd or TiKV across machines.

A new database is created readable and writable by its owner only (0600; SQLite gives its ``-wal``
and ``-shm`` files the same mode), in a directory created 0700 when missing; the path is not
followed through a symbolic link at its end.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from roboflow_core import CoordinationError
from roboflow_distributed.store._base import ABSENT, Compare, Entry, check_txn, decode_key, prefix_end

__all__ = ["SqliteStore"]

T = TypeVar("T")

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL, version INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0);
"""
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_BUSY_WAIT_S = 1.0
"""SQLite's own busy wait per attempt; the retry loop around it enforces the total timeout."""
_BACKOFF_START_S = 0.002
_BACKOFF_MAX_S = 0.1


class SqliteStore:
    """The coordination store in one local SQLite file (the embedded default).

    Args:
        path: The database file; its parent directory is created when missing.
        timeout_s: How long an operation may wait for the write lock held by other processes
            before it fails with :class:`~roboflow_core.CoordinationError`.

    Raises:
        CoordinationError: The file cannot be created or opened, or is not a store.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout_s: float = 30.0) -> None:
        self.path = Path(path).absolute()
        self.url = f"sqlite://{self.path.as_posix()}"
        self.timeout_s = timeout_s
        self._pool: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        except OSError as err:
            raise CoordinationError(
                f"cannot create the store's file: {err.strerror or err}", url=self.url
            ) from err
        self._with_retry("open", self._init_schema)

    # -- the Store protocol -------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        """The entry at ``key``, or ``None`` when absent."""

        def read(conn: sqlite3.Connection) -> Entry | None:
            row = conn.execute("SELECT value, version FROM kv WHERE key = ?", (key.encode(),)).fetchone()
            return None if row is None else Entry(key, bytes(row[0]), int(row[1]))

        return self._with_retry("get", read, key=key)

    def scan(self, prefix: str, *, limit: int | None = None) -> list[Entry]:
        """Entries whose key starts with ``prefix``, in ascending key order (at most ``limit``)."""
        if limit is not None and limit <= 0:
            return []
        start = prefix.encode()
        end = prefix_end(start)
        sql = "SELECT key, value, version FROM kv WHERE key >= ?"
        params: tuple[bytes | int, ...] = (start,)
        if end is not None:
            sql += " AND key < ?"
            params += (end,)
        sql += " ORDER BY key LIMIT ?"
        params += (-1 if limit is None else limit,)

        def read(conn: sqlite3.Connection) -> list[Entry]:
            rows = conn.execute(sql, params).fetchall()
            return [Entry(decode_key(bytes(k), url=self.url), bytes(v), int(n)) for k, v, n in rows]

        return self._with_retry("scan", read, key=prefix)

    def txn(
        self,
        compares: Sequence[Compare] = (),
        puts: Mapping[str, bytes] | None = None,
        deletes: Iterable[str] = (),
    ) -> bool:
        """Atomically: if every compare holds, apply ``puts`` and ``deletes``; whether it applied.

        Raises:
            CoordinationError: The database is locked longer than ``timeout_s``, or broken.
        """
        put_map, delete_list = check_txn(puts, deletes)
        writes = bool(put_map or delete_list)

        def apply(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE" if writes else "BEGIN")
            try:
                applied = _apply(conn, compares, put_map, delete_list)
                conn.execute("COMMIT" if applied else "ROLLBACK")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return applied

        return self._with_retry("txn", apply)

    def close(self) -> None:
        """Close the pooled connections; the store is unusable afterwards. Safe to call twice."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, []
        if os.getpid() == self._pid:
            for conn in pool:
                conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteStore({self.url!r})"

    # -- connections and retries --------------------------------------------------------------

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise CoordinationError(
                f"SQLite cannot use WAL mode here (got {mode!r}); put the store on a local file system",
                url=self.url,
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > _SCHEMA_VERSION:
                raise CoordinationError(
                    f"the store has schema version {version}, newer than this Roboflow knows "
                    f"({_SCHEMA_VERSION}); upgrade Roboflow",
                    url=self.url,
                )
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _connect(self) -> sqlite3.Connection:
        busy_wait_s = min(_BUSY_WAIT_S, self.timeout_s)
        conn = sqlite3.connect(self.path, timeout=busy_wait_s, isolation_level=None, check_same_thread=False)
        try:
            # FULL: a commit survives power loss too, not only a crash of the process.
            conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _acquire(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise CoordinationError("the store is closed", url=self.url)
            if os.getpid() != self._pid:  # connections must not cross fork(): start afresh
                self._pid, self._pool = os.getpid(), []
            if self._pool:
                return self._pool.pop()
        return self._connect()

    def _release(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if not self._closed and os.getpid() == self._pid:
                self._pool.append(conn)
                return
        conn.close()

    def _with_retry(self, what: str, op: Callable[[sqlite3.Connection], T], *, key: str | None = None) -> T:
        deadline = time.monotonic() + self.timeout_s
        backoff = _BACKOFF_START_S
        while True:
            try:
                conn = self._acquire()
            except sqlite3.Error as err:
                raise _error(what, err, url=self.url, key=key) from err
            try:
                result = op(conn)
            except sqlite3.Error as err:
                if not (_is_busy(err) and time.monotonic() < deadline):
                    conn.close()  # a connection that failed is not reused
                    raise _error(what, err, url=self.url, key=key, timeout_s=self.timeout_s) from err
                self._release(conn)  # busy: nothing was changed, the connection is fine
                time.sleep(random.uniform(0, backoff))
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
                continue
            except BaseException:
                conn.close()
                raise
            self._release(conn)
            return result


def _apply(
    conn: sqlite3.Connection, compares: Sequence[Compare], puts: dict[str, bytes], deletes: list[str]
) -> bool:
    for compare in compares:
        row = conn.execute("SELECT version FROM kv WHERE key = ?", (compare.key.encode(),)).fetchone()
        if (ABSENT if row is None else int(row[0])) != compare.version:
            return False
    if puts or deletes:
        (revision,) = conn.execute(
            "UPDATE meta SET value = value + 1 WHERE name = 'revision' RETURNING value"
        ).fetchone()
        conn.executemany(
            "INSERT INTO kv (key, value, version) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version",
            [(key.encode(), value, revision) for key, value in puts.items()],
        )
        conn.executemany("DELETE FROM kv WHERE key = ?", [(key.encode(),) for key in deletes])
    return True


def _is_busy(err: sqlite3.Error) -> bool:
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY_CODES  # extended codes keep the primary code in the low byte
    return "locked" in str(err) or "busy" in str(err)


def _error(
    what: str, err: sqlite3.Error, *, url: str, key: str | None, timeout_s: float | None = None
) -> CoordinationError:
    if timeout_s is not None and _is_busy(err):
        reason = (
            f"SQLite {what} waited {timeout_s:g} s for the write lock held by other processes; "
            "raise the timeout or use etcd for many writers"
        )
    else:
        reason = f"SQLite {what} failed: {err}"
    return CoordinationError(reason, url=url, key=key)
