"""The async client: one WebSocket to the hub, requests, table replicas, reconnection.

How it works: a reader task decodes every frame and routes it: responses to the future of
the request with the same ``id``, ``changes`` and snapshots to their :class:`Table`.
Batches keep their ``(client, op)`` ids until acknowledged; after a dropped connection the
client reconnects with jittered exponential backoff, re-subscribes every table with
``since=<its version>`` (the server replays just the missed changes, or sends a snapshot),
and resends unacknowledged batches with the same ids, so none is applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import os
import random
import ssl as ssl_module
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from client_sdk.auth import TokenRefresher
from client_sdk.errors import (
    AuthenticationError,
    ConnectionLost,
    HandshakeFailed,
    HypertabError,
    RateLimited,
    ServerError,
)
from client_sdk.functions import Functions
from client_sdk.keys import Keys
from client_sdk.names import column_id_for
from client_sdk.pacing import KEEPALIVE_INTERVAL_S, KEEPALIVE_TIMEOUT_S, Pacer, plan_cost
from client_sdk.secrets import Secrets
from client_sdk.table import Table, new_id
from client_sdk.toolcalls import ToolCalls
from client_sdk.webhooks import Webhooks
from protocol.codec import MSGPACK, Codec, codec_for
from protocol.errors import CLOSE_RECONNECT, DecodeError, Reconnect
from protocol.identity import Authenticated, KeyCreated, KeyRevoked
from protocol.identity import Keys as KeysMessage
from protocol.limits import MAX_OPS_PER_BATCH, MAX_SERVER_FRAME_BYTES
from protocol.messages import (
    Ack,
    Apply,
    Change,
    Changes,
    Error,
    ListTables,
    Ok,
    Ping,
    Pong,
    Presence,
    PresenceEvent,
    Query,
    QueryResult,
    Snapshot,
    Subscribe,
    Subscribed,
    TableInfo,
    TableList,
    Unsubscribe,
    Welcome,
)
from protocol.ops import ColumnDef, ColumnType, CreateTable, Op, Row
from protocol.query import Filter, OrderBy

log = logging.getLogger(__name__)

TokenProvider = Callable[[], str | Awaitable[str]]

SortSpec = str | tuple[str, bool] | Mapping[str, Any]
"""One ``order_by`` entry: a column (ascending), ``(column, desc)``, or the wire's
``{"column": C, "desc": bool}``."""


_Answer = TypeVar("_Answer")


@dataclass(slots=True)
class _Batch:
    table: str
    op: str
    ops: list[Op]
    future: asyncio.Future[int]
    request: int = 0


class Client:
    """A connection to a Hypertab hub. Create with :meth:`connect`."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None,
        token_provider: TokenProvider | None,
        encoding: str,
        client_id: str | None,
        reconnect: bool,
        max_backoff: float,
        keepalive_interval: float | None = KEEPALIVE_INTERVAL_S,
    ) -> None:
        self.url = url
        self.api_key = api_key
        self.token_provider = token_provider
        self.codec: Codec = codec_for(encoding)
        self.client_id = client_id or new_id()
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.keepalive_interval = keepalive_interval
        """Seconds between the client's keepalive pings (``None``: none)."""
        self.welcome: Welcome | None = None
        self.connections = 0
        self._conn: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._ops = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._batches: dict[int, _Batch] = {}  # request id -> unacked batch
        self._unacked: dict[str, _Batch] = {}  # op id -> batch, in send order
        self._tables: dict[str, Table] = {}
        self._subscribing: dict[int, Table] = {}
        self._resyncs: set[asyncio.Task[None]] = set()  # resubscriptions being sent
        self._snapshot_started: set[int] = set()
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        self._ready = asyncio.Event()
        self._failure: HypertabError | None = None
        self.presence_events: asyncio.Queue[PresenceEvent] = asyncio.Queue(maxsize=1000)
        self._pacer = Pacer()
        self._ssl: ssl_module.SSLContext | None = None  # for wss://; None: the system CAs
        self.keys = Keys(self)
        """API key administration (needs ``keys:admin``): create, list, revoke, rotate."""
        self.refresher = TokenRefresher(self._credential, self.request)
        """Refreshes a ``token_provider`` token in band before it expires."""
        self._credential_changed = asyncio.Event()
        self._last_key: str | None = None
        self.secrets = Secrets(self)
        """The tenant's secret store (``client_sdk/secrets.py``)."""
        self.functions = Functions(self)
        """The tenant's custom formula functions (``client_sdk/functions.py``)."""
        self.webhooks = Webhooks(self)
        """The tenant's webhooks (needs ``keys:admin``; ``client_sdk/webhooks.py``)."""
        self.tool_calls = ToolCalls(self)
        """Audit records of an agent's tool calls (``client_sdk/toolcalls.py``)."""
        self._probes: dict[str, list[Change]] = {}  # table id -> changes_since() collector
        self._probe_snapshot: dict[int, bool] = {}  # subscribe request id -> snapshot seen

    # --- connecting -----------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        token_provider: TokenProvider | None = None,
        encoding: str = MSGPACK,
        client_id: str | None = None,
        reconnect: bool = True,
        max_backoff: float = 5.0,
        ssl: ssl_module.SSLContext | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        keepalive_interval: float | None = KEEPALIVE_INTERVAL_S,
    ) -> Client:
        """Connect and authenticate (with an API key or a JWT from ``token_provider``).

        ``wss://`` URLs verify the server's certificate against the system's CAs, or
        against ``ca_file`` (a PEM bundle: a self-signed setup's own CA), or with the
        ``ssl`` context given. Either option with a ``ws://`` URL is an error.

        ``keepalive_interval``: seconds between WebSocket pings that detect a dead
        connection (``None``: none). Each ping waits for room in the burst limit like any
        message: the server counts pings against it.
        """
        if (api_key is None) == (token_provider is None):
            raise ValueError("give exactly one of api_key or token_provider")
        if (ssl is not None or ca_file is not None) and not url.startswith("wss://"):
            raise ValueError("ssl and ca_file need a wss:// URL")
        if ssl is not None and ca_file is not None:
            raise ValueError("give ssl or ca_file, not both")
        if ca_file is not None:
            ssl = ssl_module.create_default_context(cafile=os.fspath(ca_file))
        client = cls(
            url,
            api_key=api_key,
            token_provider=token_provider,
            encoding=encoding,
            client_id=client_id,
            reconnect=reconnect,
            max_backoff=max_backoff,
            keepalive_interval=keepalive_interval,
        )
        client._ssl = ssl
        await client._open()
        client._reader = asyncio.get_running_loop().create_task(client._run())
        return client

    async def _credential(self) -> str:
        if self.api_key is not None:
            return self.api_key
        assert self.token_provider is not None
        token = self.token_provider()
        if inspect.isawaitable(token):
            token = await token
        return str(token)

    async def _open(self) -> None:
        credential = await self._credential()
        self._last_key = self.api_key  # the key this attempt uses (None with a provider)
        tls: dict[str, Any] = {"ssl": self._ssl} if self._ssl is not None else {}
        try:
            conn = await connect(
                self.url,
                additional_headers={"Authorization": f"Bearer {credential}"},
                subprotocols=[self.codec.encoding],  # type: ignore[list-item]
                compression=None,
                max_size=MAX_SERVER_FRAME_BYTES,
                max_queue=256,
                open_timeout=10,
                # websockets' own keepalive pings would bypass the pacer; _keepalive paces them.
                ping_interval=None,
                **tls,
            )
        except InvalidStatus as exc:
            raise AuthenticationError(exc.response.status_code) from None
        except InvalidHandshake as exc:  # e.g. reset mid-handshake: a retry may well work
            raise HandshakeFailed(f"the WebSocket handshake did not finish: {exc}") from exc
        first = await conn.recv(decode=False)
        try:
            welcome = self.codec.decode_server(first)
        except DecodeError:
            welcome = None
        if not isinstance(welcome, Welcome):
            await conn.close()
            raise HandshakeFailed("the server did not start with welcome")
        self.welcome = welcome
        self._pacer.reset(welcome.limits.ops_per_minute, welcome.limits.burst_per_second)
        self._conn = conn
        self.connections += 1
        self._ready.set()
        if self.token_provider is not None:
            self.refresher.schedule(welcome.expires_at)

    async def close(self) -> None:
        """Close the connection; pending requests fail with ConnectionLost. Idempotent."""
        self._closed = True
        self._credential_changed.set()  # wakes a reconnect loop waiting for a new key
        await self.refresher.aclose()
        if self._conn is not None:
            await self._conn.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._fail_all(ConnectionLost("client closed"))

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def batch_ops(self) -> int:
        """Most ops the bulk helpers put in one batch: the wire's limit, or the rate this
        credential may spend per minute when that is smaller (a larger batch could never
        be admitted: ``over_plan_limit``)."""
        rate = self.welcome.limits.ops_per_minute if self.welcome is not None else 0
        return min(MAX_OPS_PER_BATCH, rate) if rate > 0 else MAX_OPS_PER_BATCH

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    # --- reader / reconnect ---------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._read_and_reconnect()
        except Exception as exc:  # a bug, not a network event: fail loudly, never hang
            log.warning("hypertab: the connection's reader failed (%s)", type(exc).__name__)
            failure = ConnectionLost(f"the connection's reader failed: {type(exc).__name__}")
            failure.__cause__ = exc
            self._failure = failure
            self._ready.clear()
            self._fail_all(failure)

    async def _read_and_reconnect(self) -> None:
        attempt = 0
        while True:
            conn = self._conn
            assert conn is not None
            code: int | None = None
            keepalive = asyncio.get_running_loop().create_task(self._keepalive(conn))
            try:
                async for frame in conn:
                    self._route(frame)
            except ConnectionClosed:
                pass
            finally:
                keepalive.cancel()
            if conn.close_code is not None:
                code = conn.close_code
            self._ready.clear()
            self._fail_requests(ConnectionLost("connection lost", code))
            advice = CLOSE_RECONNECT.get(code or 1006, Reconnect.YES)
            if self._closed or not self.reconnect or advice is Reconnect.NO:
                self._fail_all(ConnectionLost("connection closed", code))
                return
            stale: str | None = None  # an API key the server will not take again
            if advice is Reconnect.NEW_CREDENTIAL and self.token_provider is None:
                self._failure = ConnectionLost("credential revoked or expired", code)
                stale = self._last_key  # set_api_key() may already have replaced it
            while not self._closed:
                if stale is not None and self.api_key == stale:
                    # A revoked key does not come back: retrying it would only add failed
                    # handshakes (and audit entries). Wait for set_api_key() with a new one.
                    await self._credential_changed.wait()
                    self._credential_changed.clear()
                    continue
                delay = min(self.max_backoff, 0.05 * 2**attempt) * (0.5 + random.random())
                if advice is Reconnect.BACKOFF:
                    delay = max(delay, 1.0)
                attempt += 1
                await self._backoff(delay)
                try:
                    await self._open()
                except (OSError, HypertabError, ConnectionClosed, TimeoutError) as exc:
                    if isinstance(exc, AuthenticationError) and self._failure is None:
                        self._failure = ConnectionLost("credential refused", code)
                    refused = isinstance(exc, AuthenticationError) and exc.status == 401
                    if refused and self.token_provider is None:
                        stale = self._last_key  # refused outright: not worth retrying
                    continue
                attempt = 0
                self._failure = None
                await self._resume()
                break
            if self.closed:
                self._fail_all(ConnectionLost("client closed"))
                return

    async def _resume(self) -> None:
        for table in self._tables.values():
            await self._send(self._resubscription(table))
        for batch in list(self._unacked.values()):
            await self._send_batch(batch)

    def _resync(self, table: Table, version: int) -> None:
        """A change skipped versions (a hub never sends that; the SDK does not trust it):
        resubscribe from the replica's version, so the server replays what is missing,
        instead of applying it and losing those versions. Changes that arrive out of turn
        until then are left to the replay."""
        if not table.live.is_set():
            return  # a (re)subscription is under way: its replay or snapshot comes first
        log.warning(
            "hypertab: table %s skipped from version %d to %d; resubscribing",
            table.id, table.version, version,
        )  # fmt: skip
        message = self._resubscription(table)
        task = asyncio.get_running_loop().create_task(self._resubscribe(message))
        self._resyncs.add(task)
        task.add_done_callback(self._resyncs.discard)

    def _resubscription(self, table: Table) -> Subscribe:
        """The subscribe that resumes ``table`` from the replica's version (not live until
        its ``subscribed``)."""
        table.live.clear()
        rid = next(self._ids)
        self._subscribing[rid] = table
        return Subscribe(id=rid, table=table.id, since=table.version)

    async def _resubscribe(self, message: Subscribe) -> None:
        # A connection lost meanwhile resubscribes every table itself (_resume).
        with contextlib.suppress(ConnectionLost, ConnectionClosed):
            await self._send(message)

    def set_api_key(self, api_key: str) -> None:
        """Use a new API key from the next (re)connection on (after a rotation).

        A client waiting to reconnect after its key was revoked (4003) retries at once.
        """
        self.api_key = api_key
        self._credential_changed.set()

    async def _backoff(self, delay: float) -> None:
        """Sleep ``delay`` before reconnecting, or less if a new API key arrives."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._credential_changed.wait(), delay)
        self._credential_changed.clear()

    def _route(self, frame: bytes | str) -> None:
        try:
            message = self.codec.decode_server(frame)
        except DecodeError:
            log.warning("undecodable frame from server")
            return
        match message:
            case Changes(table=tid, changes=changes):
                table = self._tables.get(tid)
                if table is not None:
                    for change in changes:
                        if change.version > table.replica.version + 1:
                            self._resync(table, change.version)
                            break
                        table._change(change)
                elif tid in self._probes:
                    self._probes[tid].extend(changes)
            case Ack(id=rid, version=version):
                batch = self._batches.pop(rid, None)
                if batch is not None:
                    self._unacked.pop(batch.op, None)
                    if not batch.future.done():
                        batch.future.set_result(version)
            case Error(id=rid) if rid is not None and rid in self._batches:
                batch = self._batches.pop(rid)
                if message.code == "rate_limited":
                    delay = (message.retry_after_ms or 100) / 1000
                    self._pacer.warn(delay, "the server refused a batch")
                    asyncio.get_running_loop().call_later(delay, self._resend_later, batch)
                    return
                self._unacked.pop(batch.op, None)
                if not batch.future.done():
                    batch.future.set_exception(_server_error(message))
            case Snapshot(id=rid) if rid in self._probe_snapshot:
                self._probe_snapshot[rid] = True  # the op log does not reach back far enough
            case Snapshot(id=rid):
                table = self._subscribing.get(rid)
                if table is not None:
                    first = rid not in self._snapshot_started
                    self._snapshot_started.add(rid)
                    table._snapshot(message, first)
            case Subscribed(id=rid, version=version):
                self._snapshot_started.discard(rid)
                table = self._subscribing.pop(rid, None)
                if table is not None:
                    table.replica.version = max(table.replica.version, version)
                    table.live.set()
                self._resolve(rid, message)
            case Error(id=rid) if rid is not None:
                self._subscribing.pop(rid, None)
                future = self._pending.pop(rid, None)
                if future is not None and not future.done():
                    future.set_exception(_server_error(message))
            case Error():
                log.warning("server error without request: %s", message.code)
            case PresenceEvent():
                with contextlib.suppress(asyncio.QueueFull):
                    self.presence_events.put_nowait(message)
            case QueryResult(id=rid) | TableList(id=rid) | Ok(id=rid) | Pong(id=rid):
                self._resolve(rid, message)
            case (
                Authenticated(id=rid)
                | KeyCreated(id=rid)
                | KeysMessage(id=rid)
                | KeyRevoked(id=rid)
            ):
                self._resolve(rid, message)
            case _:
                rid = getattr(message, "id", None)  # feature responses (secrets, ...)
                if isinstance(rid, int):
                    self._resolve(rid, message)

    def _resend_later(self, batch: _Batch) -> None:
        if batch.future.done() or self._closed:
            return
        task = asyncio.get_running_loop().create_task(self._send_batch(batch))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    def _resolve(self, rid: int, message: Any) -> None:
        future = self._pending.pop(rid, None)
        if future is not None and not future.done():
            future.set_result(message)

    def _fail_requests(self, exc: HypertabError) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)
        self._batches.clear()  # unacked batches stay in _unacked, to be resent

    def _fail_all(self, exc: HypertabError) -> None:
        self._fail_requests(exc)
        for batch in self._unacked.values():
            if not batch.future.done():
                batch.future.set_exception(exc)
        self._unacked.clear()
        for table in self._tables.values():
            table._ended()

    # --- sending --------------------------------------------------------------------------

    async def _send(self, message: Any) -> None:
        await self._pacer.wait(plan_cost(message))  # stay within welcome.limits
        conn = self._conn
        if conn is None:
            raise ConnectionLost("not connected")
        await conn.send(self.codec.encode(message), text=not self.codec.binary)

    async def _keepalive(self, conn: ClientConnection) -> None:
        """Ping every :attr:`keepalive_interval` s, each ping paced like a message; close
        the connection (1011, then the reader reconnects) when no pong comes back within
        :data:`KEEPALIVE_TIMEOUT_S`."""
        interval = self.keepalive_interval
        if interval is None:
            return
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(interval)
                await self._pacer.wait(0)  # the server charges pings to the burst limit
                pong = await conn.ping()
                try:
                    async with asyncio.timeout(KEEPALIVE_TIMEOUT_S):
                        await pong
                except TimeoutError:
                    await conn.close(1011, "keepalive ping timeout")
                    return

    async def _wait_ready(self) -> None:
        if self._closed:
            raise ConnectionLost("client closed")
        if not self._ready.is_set():
            if self._failure is not None:
                raise self._failure
            await self._ready.wait()

    async def request(self, make: Callable[[int], Any]) -> Any:
        """Send a request built by ``make(request_id)`` and wait for its answer."""
        await self._wait_ready()
        rid = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            await self._send(make(rid))
        except ConnectionClosed:
            self._pending.pop(rid, None)
            raise ConnectionLost("connection lost") from None
        return await future

    async def request_as(self, make: Callable[[int], Any], expected: type[_Answer]) -> _Answer:
        """``request``, checking that the answer is of the ``expected`` message type."""
        result = await self.request(make)
        if not isinstance(result, expected):  # pragma: no cover - a server bug
            raise TypeError(f"expected {expected.__name__}, got {type(result).__name__}")
        return result

    async def _send_batch(self, batch: _Batch) -> None:
        if self._conn is None or not self._ready.is_set():
            return  # resent by _resume after reconnecting
        batch.request = next(self._ids)
        self._batches[batch.request] = batch
        message = Apply(
            id=batch.request, table=batch.table, client=self.client_id, op=batch.op, ops=batch.ops
        )
        with contextlib.suppress(ConnectionClosed):
            await self._send(message)

    async def apply(self, table: str, ops: list[Op]) -> int:
        """Apply a batch to a table; returns its version once durable.

        The batch survives reconnections (resent with the same ids) until acknowledged.
        """
        if not ops:
            raise ValueError("a batch needs at least one op")
        await self._wait_ready()
        op = f"{self.client_id[:8]}-{next(self._ops)}"
        batch = _Batch(table, op, ops, asyncio.get_running_loop().create_future())
        self._unacked[op] = batch
        await self._send_batch(batch)
        return await batch.future

    # --- tables ---------------------------------------------------------------------------

    async def create_table(
        self,
        name: str,
        columns: Sequence[ColumnDef | tuple[str, str] | tuple[str, str, str]] = (),
        *,
        table_id: str | None = None,
    ) -> Table:
        """Create a table and return it subscribed.

        ``columns``: ``ColumnDef``s or ``(name, type)`` tuples (the id is made from the
        name, always valid: see ``client_sdk/names.py``) or ``(id, name, type)``.
        ``table_exists`` if a table already has that name: see :meth:`get_or_create_table`.
        """
        defs = _columns(columns)
        tid = table_id or new_id()
        await self.apply(tid, [CreateTable(name=name, columns=defs)])
        return await self.table(tid)

    async def get_or_create_table(
        self,
        name: str,
        columns: Sequence[ColumnDef | tuple[str, str] | tuple[str, str, str]] = (),
    ) -> Table:
        """The table called ``name``, subscribed; created with ``columns`` if there is none.

        An existing table is returned as it is (its columns are not changed). Safe to run
        again and again, and against a concurrent creator of the same name.
        """
        for _ in range(2):
            tables = await self.list_tables()
            info = next((t for t in tables if t.name == name), None)
            if info is not None:
                return await self.table(info.id)
            try:
                return await self.create_table(name, columns)
            except ServerError as exc:
                if exc.code != "table_exists":
                    raise
        return await self.table(name)

    async def table(self, name_or_id: str) -> Table:
        """Subscribe to a table (by id, else by name) and return its live replica."""
        existing = self._tables.get(name_or_id)
        if existing is not None:
            return existing
        tables = await self.list_tables()
        info = next((t for t in tables if t.id == name_or_id), None) or next(
            (t for t in tables if t.name == name_or_id), None
        )
        if info is None:
            raise ServerError("unknown_table", f"no table {name_or_id!r}")
        table = self._tables.get(info.id) or Table(self, info.id)
        self._tables[info.id] = table
        await self._wait_ready()
        rid = next(self._ids)
        self._subscribing[rid] = table
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        await self._send(Subscribe(id=rid, table=info.id))
        try:
            await future
        except BaseException:
            self._tables.pop(info.id, None)
            raise
        return table

    async def unsubscribe(self, table: Table) -> None:
        """Stop following a table."""
        self._tables.pop(table.id, None)
        table._ended()
        await self.request(lambda rid: Unsubscribe(id=rid, table=table.id))

    async def list_tables(self) -> list[TableInfo]:
        """The tenant's tables."""
        result = await self.request(lambda rid: ListTables(id=rid))
        assert isinstance(result, TableList)
        return result.tables

    async def query(
        self,
        table: str,
        *,
        where: Mapping[str, Any] | None = None,
        order_by: Sequence[SortSpec] = (),
        columns: Sequence[str] | None = None,
        limit: int = 500,
        after: str | None = None,
    ) -> QueryResult:
        """One page of a server-side query, without subscribing.

        ``table``: an id or a name. ``where``: a filter in its wire form, plain dicts such
        as ``{"op": "gt", "column": "Age", "value": 30}`` (docs/protocol.md, "Queries").
        ``order_by``: columns, each a name/id (ascending), ``(column, desc)`` or the
        wire's ``{"column": C, "desc": bool}``; the table's row order breaks ties.
        ``columns``: the cells the rows carry (all when None). ``after``: the previous
        page's ``next``. Rows carry cells keyed by column id.
        Raises :class:`ServerError` (``invalid_filter`` for a ``where`` that is not a filter,
        before anything is sent; ``unknown_column``, ``invalid_cursor`` … from the server).
        """
        wire_where, wire_order = _filter(where), _order_by(order_by)
        selected = list(columns) if columns is not None else None
        result = await self.request(
            lambda rid: Query(
                id=rid,
                table=table,
                where=wire_where,
                order_by=wire_order,
                columns=selected,
                after=after,
                limit=limit,
            )
        )
        assert isinstance(result, QueryResult)
        return result

    async def changes_since(self, table: str, since: int) -> list[Change] | None:
        """The committed changes of ``table`` (an id) after version ``since``, in order,
        without following the table; ``None`` when the server's op log no longer reaches
        back to ``since`` (read the table afresh instead).

        For tables this client does not follow (a followed table has them already, in
        :meth:`Table.changes`): ``ValueError`` otherwise.
        """
        if table in self._tables or table in self._probes:
            raise ValueError("changes_since is for tables this client does not follow")
        await self._wait_ready()
        collected: list[Change] = []
        self._probes[table] = collected
        rid = next(self._ids)
        self._probe_snapshot[rid] = False
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            await self._send(Subscribe(id=rid, table=table, since=since))
            subscribed = await future
            assert isinstance(subscribed, Subscribed)
            await self.request(lambda r: Unsubscribe(id=r, table=table))
        finally:
            self._probes.pop(table, None)
            snapshot = self._probe_snapshot.pop(rid, False)
            self._pending.pop(rid, None)
        if snapshot:
            return None
        return [c for c in collected if since < c.version <= subscribed.version]

    async def query_all(
        self,
        table: str,
        *,
        where: Mapping[str, Any] | None = None,
        order_by: Sequence[SortSpec] = (),
        columns: Sequence[str] | None = None,
        page_size: int = 500,
    ) -> AsyncIterator[Row]:
        """Every row a query matches, page after page (see :meth:`query`).

        Rows inserted while this runs may or may not appear; rows that existed when it
        started appear exactly once unless they are edited or moved meanwhile.
        """
        after: str | None = None
        while True:
            page = await self.query(
                table, where=where, order_by=order_by, columns=columns, limit=page_size, after=after
            )
            for row in page.rows:
                yield row
            if page.next is None:
                return
            table, after = page.table, page.next  # the id: a rename cannot break the paging

    async def send_presence(self, table: str, state: dict[str, Any]) -> None:
        """Send presence for a subscribed table (see :meth:`Table.set_presence`)."""
        await self._wait_ready()
        await self._send(Presence(table=table, state=state))

    async def ping(self) -> None:
        """Round trip to the server."""
        await self.request(lambda rid: Ping(id=rid))


def _columns(
    specs: Sequence[ColumnDef | tuple[str, str] | tuple[str, str, str]],
) -> list[ColumnDef]:
    """Column definitions from specs; ids made from names never collide with each other."""
    taken = {s.id if isinstance(s, ColumnDef) else s[0] for s in specs if not _is_pair(s)}
    defs: list[ColumnDef] = []
    for spec in specs:
        if isinstance(spec, ColumnDef):
            defs.append(spec)
        elif len(spec) == 2:
            name, kind = spec
            cid = column_id_for(name, taken)
            taken.add(cid)
            defs.append(ColumnDef(id=cid, name=name, type=ColumnType(kind)))
        else:
            cid, name, kind = spec
            defs.append(ColumnDef(id=cid, name=name, type=ColumnType(kind)))
    return defs


def _is_pair(spec: ColumnDef | tuple[str, ...]) -> bool:
    return not isinstance(spec, ColumnDef) and len(spec) == 2


def _filter(where: Mapping[str, Any] | None) -> Filter | None:
    if where is None:
        return None
    try:
        converted: Filter = msgspec.convert(where, Filter)
    except msgspec.ValidationError as exc:
        raise ServerError("invalid_filter", f"where is not a filter: {exc}") from None
    return converted


def _order_by(order_by: Sequence[SortSpec] | str) -> list[OrderBy]:
    entries = (order_by,) if isinstance(order_by, str) else order_by
    out = []
    for entry in entries:
        if isinstance(entry, str):
            out.append(OrderBy(column=entry))
        elif isinstance(entry, Mapping):
            try:
                out.append(msgspec.convert(entry, OrderBy))
            except msgspec.ValidationError as exc:
                raise ServerError("invalid_filter", f"order_by entry: {exc}") from None
        else:
            column, desc = entry
            out.append(OrderBy(column=column, desc=bool(desc)))
    return out


def _server_error(message: Error) -> ServerError:
    cls = RateLimited if message.code == "rate_limited" else ServerError
    return cls(
        message.code,
        message.message,
        op_index=message.op_index,
        retry_after_ms=message.retry_after_ms,
    )
