"""The coordination store on etcd v3 (``aetcd``, asyncio gRPC), for many machines.

The store owns an event loop in a daemon thread (:class:`LoopThread`) and runs every call there, so
its synchronous API works from any thread. A version is etcd's ``mod_revision``; a compare with
``ABSENT`` checks ``version(key) == 0``, any other compare ``mod_revision(key) == version``.

Every call has a timeout. When a call finds no server (or times out) the gRPC channel is dropped
and the next call opens a fresh one on the next endpoint, so a store object keeps working after
etcd restarts or fails over. A transaction is not retried by the store (it may have been applied
before the connection broke); reads try each endpoint once. etcd limits a transaction to 128
operations unless the server sets ``--max-txn-ops``.

Security (:mod:`roboflow_distributed.store._security`): with :class:`TlsFiles` the channel is TLS
(the server checked against the CA, the client certificate shown when given); with
:class:`Credentials` the client authenticates with user and password and sends the token etcd
hands out on every call. A token that etcd no longer accepts (it expired) is renewed by
connecting again, and the call is made once more: etcd rejects such a call before applying it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import aetcd
import grpc
from aetcd import rpc

from roboflow_core import CoordinationError
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
from roboflow_distributed.store._security import Credentials, TlsFiles

__all__ = ["EtcdStore"]

T = TypeVar("T")

_PAGE = 500
"""Keys per range request of a scan (a scan pages through one revision, so it stays consistent)."""
_CHANNEL_OPTIONS = {
    # a restarted server is found again within about a second, not after minutes of backoff
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
    # gRPC also takes this as the time one connection attempt may take (TCP, TLS handshake, HTTP/2
    # settings): a busy machine needs more than 100 ms for a TLS handshake
    "grpc.min_reconnect_backoff_ms": 5000,
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
}
_CONNECTION_CODES = frozenset({rpc.StatusCode.UNAVAILABLE, rpc.StatusCode.DEADLINE_EXCEEDED})


class EtcdStore:
    """The coordination store on an etcd v3 cluster.

    Args:
        endpoints: ``host:port`` of the cluster's client URLs, comma-separated or as a list
            (port 2379 when left out).
        timeout_s: Timeout of every call.
        tls: Connect with TLS using these files (``None``: plaintext).
        credentials: Authenticate as this etcd user (``None``: no auth).

    Creating the store reads the TLS files but does not connect; the first call does.

    Raises:
        CoordinationError: The endpoints are malformed, or a TLS file cannot be read.
    """

    def __init__(
        self,
        endpoints: str | Iterable[str],
        *,
        timeout_s: float = 10.0,
        tls: TlsFiles | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self._endpoints = parse_endpoints(endpoints)
        self.url = "etcd://" + ",".join(_netloc(host, port) for host, port in self._endpoints)
        self.timeout_s = timeout_s
        self._channel_credentials = None if tls is None else grpc.ssl_channel_credentials(*tls.read())
        self._credentials = credentials
        self._next = 0
        # touched only on the loop's thread:
        self._client: Any = None
        self._retired: set[Any] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = LoopThread("roboflow-etcd")

    # -- the Store protocol -------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        """The entry at ``key``, or ``None`` when absent."""

        async def read(client: Any) -> Entry | None:
            found = await client.get(key.encode())
            return None if found is None else Entry(key, bytes(found.value), int(found.mod_revision))

        return self._call("get", read, key=key, idempotent=True)

    def scan(self, prefix: str, *, limit: int | None = None) -> list[Entry]:
        """Entries whose key starts with ``prefix``, in ascending key order (at most ``limit``)."""
        if limit is not None and limit <= 0:
            return []

        async def read(client: Any) -> list[Entry]:
            return await self._scan(client, prefix.encode(), limit)

        return self._call("scan", read, key=prefix, idempotent=True)

    def txn(
        self,
        compares: Sequence[Compare] = (),
        puts: Mapping[str, bytes] | None = None,
        deletes: Iterable[str] = (),
    ) -> bool:
        """Atomically: if every compare holds, apply ``puts`` and ``deletes``; whether it applied.

        Raises:
            CoordinationError: etcd is unreachable, timed out or refused the transaction (then it
                may or may not have been applied).
        """
        put_map, delete_list = check_txn(puts, deletes)

        async def apply(client: Any) -> bool:
            ops = client.transactions
            conditions = [
                ops.version(c.key.encode()) == 0
                if c.version == ABSENT
                else ops.mod(c.key.encode()) == c.version
                for c in compares
            ]
            success = [ops.put(key.encode(), value) for key, value in put_map.items()]
            success += [ops.delete(key.encode()) for key in delete_list]
            # aetcd iterates `failure` without a None check: pass an empty list
            succeeded, _ = await client.transaction(compare=conditions, success=success, failure=[])
            return bool(succeeded)

        return self._call("txn", apply, idempotent=False)

    def close(self) -> None:
        """Close the connection and stop the store's thread. Safe to call twice."""
        self._loop.close(self._close_clients(), timeout_s=self.timeout_s)

    def __enter__(self) -> EtcdStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EtcdStore({self.url!r})"

    # -- on the loop's thread -----------------------------------------------------------------

    def _call(
        self, what: str, op: Callable[[Any], Awaitable[T]], *, key: str | None = None, idempotent: bool
    ) -> T:
        attempts = len(self._endpoints) if idempotent else 1

        async def attempt() -> T:
            remaining, renew_token = attempts, self._credentials is not None
            while True:
                client = None
                try:
                    client = await self._connected()  # authenticates: may fail too
                    return await op(client)
                except (aetcd.ClientError, rpc.AioRpcError) as err:
                    if client is not None and renew_token and _is_stale_token(err):
                        renew_token = False  # rejected before being applied: renew the token, retry
                        self._retire(client, next_endpoint=False)
                        continue
                    if not _is_connection_error(err):
                        raise
                    self._retire(client)
                    remaining -= 1
                    if not remaining:
                        raise

        try:
            return self._loop.run(attempt(), timeout_s=self.timeout_s * (attempts + 1) + 1.0)
        except RuntimeError as err:
            raise CoordinationError(str(err), url=self.url) from err
        except TimeoutError as err:
            raise CoordinationError(
                f"etcd did not answer {what} within {self.timeout_s:g} s; check that it runs at the URL",
                url=self.url,
                key=key,
            ) from err
        except (aetcd.ClientError, rpc.AioRpcError) as err:
            hint = "; check that etcd runs at the URL" if _is_connection_error(err) else ""
            raise CoordinationError(
                f"etcd {what} failed: {_describe(err)}{hint}", url=self.url, key=key
            ) from err

    async def _connected(self) -> Any:
        if self._client is None:
            host, port = self._endpoints[self._next % len(self._endpoints)]
            client = _Client(
                _netloc(host, port),
                timeout=self.timeout_s,
                channel_credentials=self._channel_credentials,
                credentials=self._credentials,
            )
            try:
                await client.connect()
            except BaseException:
                with contextlib.suppress(Exception):
                    await client.close()
                raise
            self._client = client
        return self._client

    def _retire(self, client: Any, *, next_endpoint: bool = True) -> None:
        """Stop using ``client`` (its server is gone, or its token): the next call opens a fresh channel.

        ``None``: connecting failed; the next call tries the next endpoint.
        """
        if client is None:
            self._next += 1
            return
        if self._client is not client:
            return
        self._client = None
        self._next += next_endpoint
        self._retired.add(client)
        task = asyncio.get_running_loop().create_task(self._close_retired(client))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_retired(self, client: Any) -> None:
        await asyncio.sleep(self.timeout_s)  # calls still running on it get their answer or timeout
        if client in self._retired:
            self._retired.discard(client)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 1.0)

    async def _close_clients(self) -> None:
        clients = [c for c in (self._client, *self._retired) if c is not None]
        self._client = None
        self._retired.clear()
        for client in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 1.0)

    async def _scan(self, client: Any, prefix: bytes, limit: int | None) -> list[Entry]:
        # aetcd's get_prefix has no limit or revision: build the range request here
        start, end = (prefix, prefix_end(prefix) or b"\0") if prefix else (b"\0", b"\0")
        entries: list[Entry] = []
        revision = 0
        while True:
            page = _PAGE if limit is None else min(_PAGE, limit - len(entries))
            request = rpc.RangeRequest(
                key=start,
                range_end=end,
                limit=page,
                revision=revision,
                sort_order=rpc.RangeRequest.ASCEND,
                sort_target=rpc.RangeRequest.KEY,
            )
            response = await client.kvstub.Range(request, timeout=self.timeout_s, metadata=client.metadata)
            revision = revision or int(response.header.revision)
            entries += [
                Entry(decode_key(bytes(kv.key), url=self.url), bytes(kv.value), int(kv.mod_revision))
                for kv in response.kvs
            ]
            if not response.more or not response.kvs or (limit is not None and len(entries) >= limit):
                return entries
            start = bytes(response.kvs[-1].key) + b"\0"


class _Client(aetcd.Client):  # type: ignore[misc]
    """aetcd's client on a channel of our choosing: TLS when given credentials.

    aetcd opens only plaintext channels; the store calls only ``get``, ``transaction`` and the
    KV stub, so ``connect`` sets up just the channel, the token and the KV stub.
    """

    def __init__(
        self,
        target: str,
        *,
        timeout: float,
        channel_credentials: grpc.ChannelCredentials | None,
        credentials: Credentials | None,
    ) -> None:
        super().__init__(timeout=timeout, options=dict(_CHANNEL_OPTIONS))
        self._target = target
        self._channel_credentials = channel_credentials
        self._login = credentials

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        options = list(self._options.items())
        if self._channel_credentials is None:
            self.channel = rpc.insecure_channel(self._target, options=options)
        else:
            self.channel = rpc.secure_channel(self._target, self._channel_credentials, options=options)
        if self._login is not None:
            request = rpc.AuthenticateRequest(name=self._login.user, password=self._login.password)
            answer = await rpc.AuthStub(self.channel).Authenticate(request, timeout=self._timeout)
            self.metadata = (("token", answer.token),)
        self.kvstub = rpc.KVStub(self.channel)
        self._connected.set()


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_connection_error(err: BaseException) -> bool:
    """Whether ``err`` says the server was not reached or did not answer in time."""
    if isinstance(err, aetcd.ConnectionFailedError | aetcd.ConnectionTimeoutError):
        return True
    return isinstance(err, rpc.AioRpcError) and err.code() in _CONNECTION_CODES


def _is_stale_token(err: BaseException) -> bool:
    """Whether etcd refused ``err``'s call because its auth token expired or is unknown."""
    cause = err if isinstance(err, rpc.AioRpcError) else err.__cause__
    return (
        isinstance(cause, rpc.AioRpcError)
        and cause.code() == rpc.StatusCode.UNAUTHENTICATED
        and "invalid auth token" in (cause.details() or "")
    )


def _describe(err: BaseException) -> str:
    if isinstance(err, rpc.AioRpcError):
        return f"{err.code().name}: {err.details()}"
    cause = err.__cause__
    if isinstance(cause, rpc.AioRpcError):
        return f"{cause.code().name}: {cause.details()}"
    return str(err) or type(err).__name__
