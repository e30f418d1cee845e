"""The coordination store on TiKV (``tikv-client``, transactional API), for many machines.

TiKV shows clients no per-key version, so each value is stored as an 8-byte big-endian version
followed by the payload. A write gives a key ``max(PD timestamp, old version + 1)``: strictly
increasing per key, and a key that is deleted and created again never returns to an old version.
:meth:`TikvStore.txn` is a pessimistic transaction: lock the compared and written keys with
``get_for_update`` (in key order, so two transactions never deadlock), check the versions, write,
commit. Reads use a snapshot at the current timestamp.

The client is asynchronous (a Rust tokio runtime under PyO3). The store runs it on an event loop in
a daemon thread of its own. Containing the client's abort at exit: its tokio threads briefly take the
GIL right after handing a result back to Python; if the interpreter is finalizing at that moment the
thread is killed while it holds a GIL state and Python aborts (``Fatal Python error:
PyGILState_Release``, SIGABRT). So an ``atexit`` hook closes every open store and then waits a
moment after the last TiKV call before finalization goes on.

Environment: ``TIKV_CONNECTION_TIMEOUT_SECS`` (default 10) and ``TIKV_OPERATION_TIMEOUT_SECS``
(default 30) when the timeouts are not given.

TLS (``TIKV_CA_PATH``, ``TIKV_CERT_PATH``, ``TIKV_KEY_PATH``, as the original reads them, or the
URL's ``ca``/``cert``/``key``): the Rust client supports it, but the Python binding
(``tikv-client`` 0.0.4, ``TransactionClient.connect(pd_endpoints, timeout)``) has no way to pass the
files on. So a store given TLS files checks that they can be read and then refuses to connect,
rather than talk to the cluster in plaintext while the operator believes it is encrypted.
"""

from __future__ import annotations

import atexit
import re
import struct
import threading
import time
import weakref
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from roboflow_core import CoordinationError
from roboflow_core.env import env_float
from roboflow_distributed.store._base import (
    ABSENT,
    Compare,
    Entry,
    check_txn,
    decode_key,
    parse_endpoints,
    prefix_end,
)
from roboflow_distributed.store._loop import LoopThread
from roboflow_distributed.store._security import TlsFiles

__all__ = ["TikvStore", "decode_value", "encode_value"]

T = TypeVar("T")

_VERSION = struct.Struct(">Q")
_PAGE = 1024
"""Keys per scan request."""
_SETTLE_S = 0.25
"""How long after the last TiKV call the exit hook lets the client's threads finish."""
_RUST_LOCATION = re.compile(r"\[[^\]]*\.rs:\d+\]:\s*")

_live: weakref.WeakSet[TikvStore] = weakref.WeakSet()
_last_call = 0.0
_hook_lock = threading.Lock()
_hook_registered = False


def encode_value(version: int, payload: bytes) -> bytes:
    """A value as TiKV stores it: the version (8 bytes, big-endian), then the payload."""
    return _VERSION.pack(version) + payload


def decode_value(raw: bytes, *, key: str, url: str) -> tuple[int, bytes]:
    """The version and payload of a value read from TiKV.

    Raises:
        CoordinationError: The value is shorter than its version header (not written by a store).
    """
    if len(raw) < _VERSION.size:
        raise CoordinationError(
            "the stored value has no version header (not written by Roboflow)", key=key, url=url
        )
    (version,) = _VERSION.unpack_from(raw)
    return version, bytes(raw[_VERSION.size :])


class TikvStore:
    """The coordination store on a TiKV cluster, reached through its PD endpoints.

    Args:
        pd_endpoints: ``host:port`` of the PD servers, comma-separated or as a list.
        connect_timeout_s: Timeout of connecting (default: ``TIKV_CONNECTION_TIMEOUT_SECS`` or 10).
        timeout_s: Timeout of every call (default: ``TIKV_OPERATION_TIMEOUT_SECS`` or 30).
        tls: TLS files; refused (see the module docstring): the binding cannot use them.

    Raises:
        CoordinationError: The endpoints are malformed, PD cannot be reached, or TLS was asked for.
    """

    def __init__(
        self,
        pd_endpoints: str | Iterable[str],
        *,
        connect_timeout_s: float | None = None,
        timeout_s: float | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self._endpoints = [f"{h}:{p}" for h, p in parse_endpoints(pd_endpoints)]
        self.url = "tikv://" + ",".join(self._endpoints)
        if tls is not None:
            tls.read()  # a missing file is named first
            raise CoordinationError(
                "TLS to TiKV (TIKV_CA_PATH, TIKV_CERT_PATH, TIKV_KEY_PATH) cannot be used: the Python "
                "tikv-client binding passes no certificates to its client; refusing to connect in "
                "plaintext. Use the etcd store with TLS, or reach TiKV over a trusted network "
                "without these variables",
                url=self.url,
            )
        self.connect_timeout_s = connect_timeout_s or env_float("TIKV_CONNECTION_TIMEOUT_SECS", 10.0)
        self.timeout_s = timeout_s or env_float("TIKV_OPERATION_TIMEOUT_SECS", 30.0)
        _register_exit_hook()
        self._loop = LoopThread("roboflow-tikv")
        self._client: Any = None  # touched only on the loop's thread
        _live.add(self)
        try:
            self._run("connect", self._connect(), timeout_s=self.connect_timeout_s)
        except BaseException:
            self.close()
            raise

    # -- the Store protocol -------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        """The entry at ``key``, or ``None`` when absent."""
        return self._run("get", self._get(key), key=key)

    def scan(self, prefix: str, *, limit: int | None = None) -> list[Entry]:
        """Entries whose key starts with ``prefix``, in ascending key order (at most ``limit``)."""
        if limit is not None and limit <= 0:
            return []
        return self._run("scan", self._scan(prefix, limit), key=prefix)

    def txn(
        self,
        compares: Sequence[Compare] = (),
        puts: Mapping[str, bytes] | None = None,
        deletes: Iterable[str] = (),
    ) -> bool:
        """Atomically: if every compare holds, apply ``puts`` and ``deletes``; whether it applied.

        Raises:
            CoordinationError: TiKV is unreachable, timed out, or aborted the transaction (e.g. on
                a lock wait timeout); then it may or may not have been applied.
        """
        put_map, delete_list = check_txn(puts, deletes)
        return self._run("txn", self._txn(compares, put_map, delete_list))

    def close(self) -> None:
        """Drop the client and stop the store's thread. Safe to call twice."""
        _live.discard(self)

        async def drop_client() -> None:
            self._client = None  # dropped on the loop's thread, where it was used

        self._loop.close(drop_client())

    def __enter__(self) -> TikvStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TikvStore({self.url!r})"

    # -- calls --------------------------------------------------------------------------------

    def _run(
        self,
        what: str,
        coro: Coroutine[Any, Any, T],
        *,
        key: str | None = None,
        timeout_s: float | None = None,
    ) -> T:
        global _last_call
        timeout_s = timeout_s or self.timeout_s
        try:
            return self._loop.run(coro, timeout_s=timeout_s)
        except RuntimeError as err:
            raise CoordinationError(str(err), url=self.url) from err
        except TimeoutError as err:
            raise CoordinationError(
                f"TiKV did not answer {what} within {timeout_s:g} s; check that PD runs at the URL",
                url=self.url,
                key=key,
            ) from err
        except CoordinationError:
            raise
        except Exception as err:  # tikv-client raises bare Exception with the Rust error's text
            raise CoordinationError(f"TiKV {what} failed: {_describe(err)}", url=self.url, key=key) from err
        finally:
            _last_call = time.monotonic()

    async def _connect(self) -> None:
        from tikv_client import asynchronous as tikv

        self._client = await tikv.TransactionClient.connect(list(self._endpoints))

    async def _snapshot(self) -> Any:
        timestamp = await self._client.current_timestamp()
        return self._client.snapshot(timestamp, pessimistic=False)

    async def _get(self, key: str) -> Entry | None:
        raw = await (await self._snapshot()).get(key.encode())
        if raw is None:
            return None
        version, payload = decode_value(bytes(raw), key=key, url=self.url)
        return Entry(key, payload, version)

    async def _scan(self, prefix: str, limit: int | None) -> list[Entry]:
        snapshot = await self._snapshot()
        start, end = prefix.encode(), prefix_end(prefix.encode())
        entries: list[Entry] = []
        include_start = True
        while limit is None or len(entries) < limit:
            page = _PAGE if limit is None else min(_PAGE, limit - len(entries))
            found = _pairs(await snapshot.scan(start, end, page, include_start, False))
            for raw_key, raw in found:
                key = decode_key(raw_key, url=self.url)
                version, payload = decode_value(raw, key=key, url=self.url)
                entries.append(Entry(key, payload, version))
            if len(found) < page:
                break
            start, include_start = found[-1][0], False
        return entries

    async def _txn(self, compares: Sequence[Compare], puts: dict[str, bytes], deletes: list[str]) -> bool:
        txn = await self._client.begin(pessimistic=True)
        try:
            current: dict[str, int] = {}
            for key in sorted({c.key for c in compares} | puts.keys()):
                raw = await txn.get_for_update(key.encode())
                current[key] = ABSENT if raw is None else decode_value(bytes(raw), key=key, url=self.url)[0]
            matched = all(current[c.key] == c.version for c in compares)
            if not matched or not (puts or deletes):
                await txn.rollback()  # nothing to write: release the locks
                return matched
            if puts:
                now = int(await self._client.current_timestamp())
                for key, value in puts.items():
                    await txn.put(key.encode(), encode_value(max(now, current[key] + 1), value))
            for key in deletes:
                await txn.delete(key.encode())
            await txn.commit()
            return True
        except BaseException:
            await _quiet_rollback(txn)
            raise


async def _quiet_rollback(txn: Any) -> None:
    try:
        await txn.rollback()
    except Exception:  # already committed, rolled back or the connection is gone
        return


def _pairs(found: Any) -> list[tuple[bytes, bytes]]:
    """Key/value pairs of a scan answer (a dict in some tikv-client versions, pairs in others)."""
    items = found.items() if isinstance(found, Mapping) else found
    pairs = [(bytes(k), bytes(v)) for k, v in items]
    pairs.sort()
    return pairs


def _describe(err: BaseException) -> str:
    return _RUST_LOCATION.sub("", str(err)).strip() or type(err).__name__


def _register_exit_hook() -> None:
    global _hook_registered
    with _hook_lock:
        if not _hook_registered:
            atexit.register(_close_all_at_exit)
            _hook_registered = True


def _close_all_at_exit() -> None:
    """Close the stores still open and let the client's threads finish before finalization."""
    for store in list(_live):
        store.close()
    if _last_call:
        time.sleep(max(0.0, _last_call + _SETTLE_S - time.monotonic()))
