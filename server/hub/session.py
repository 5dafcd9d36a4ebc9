"""One client connection: the asyncio shell around the session's rules.

The rules live in :class:`~server.hub.session_core.SessionCore` (Sans-I/O: decoding, the
bad-frame limit, authorization, the answers to commits and presence). This shell only moves
bytes: it reads frames and hands them to the core, charges what the core admits against the
rate limits (``admit``), runs the message's handler (its row of ``server/hub/messages.py``),
and performs the core's actions (send a message, close). Handlers do the I/O: the store,
the fan-out hub, paced writes of large answers.

Batches are not awaited in the read loop: the next message is read while the previous batch
waits for its group commit, and the ack is written from the commit's callback. That is what
lets a client pipeline edits and the store commit them together.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from protocol.codec import Codec
from protocol.limits import (
    MAX_FRAME_BYTES,
    MAX_OPS_PER_BATCH,
    SNAPSHOT_CHUNK_ROWS,
)
from protocol.messages import (
    Ack,
    Apply,
    ClientMessage,
    Error,
    ListTables,
    Ok,
    Ping,
    Pong,
    Presence,
    Query,
    QueryResult,
    ServerLimits,
    Snapshot,
    Subscribe,
    Subscribed,
    TableInfo,
    TableList,
    Unsubscribe,
)
from server.auth.principal import Principal
from server.engine.catalog import TableState
from server.hub.fanout import Hub, Subscriber
from server.hub.frames import changes_frames, split_encode
from server.hub.logcontext import connection_fields
from server.hub.messages import TABLE
from server.hub.outbox import Outbox
from server.hub.services import Services
from server.hub.session_core import MAX_BAD_FRAMES as MAX_BAD_FRAMES
from server.hub.session_core import Send, SessionCore
from server.store.manager import StoreManager
from server.store.query import QueryError
from server.store.tenant import StoreError, TenantStore
from server.store.writer import BatchOutcome

log = logging.getLogger(__name__)

REPLAY_CHUNK = 500
"""Changes per frame when replaying the op log to a resuming subscriber."""

Admit = Callable[["Session", ClientMessage], Awaitable["Error | None"]]
"""Admission control (rate limits, server/hub/admission.py) awaited before a message is
handled; None admits it."""


def table_info(state: TableState) -> TableInfo:
    """A table as the wire describes it."""
    return TableInfo(
        id=state.id,
        name=state.name,
        version=state.version,
        columns=[c.to_def() for c in state.columns],
    )


class Session:
    """One authenticated connection: its socket, its core, its handlers."""

    # Slots: one Session per connection, 10,000 connections per process.
    __slots__ = (
        "__weakref__",
        "admit",
        "codec",
        "conn",
        "core",
        "hub",
        "id",
        "limits",
        "outbox",
        "services",
        "stores",
    )

    def __init__(
        self,
        conn: ServerConnection,
        principal: Principal,
        codec: Codec,
        services: Services,
        *,
        limits: ServerLimits,
        admit: Admit | None = None,
    ) -> None:
        self.conn = conn
        self.codec = codec
        self.services = services
        self.hub: Hub = services.hub
        self.stores: StoreManager = services.stores
        self.limits = limits
        self.admit = admit
        self.id = secrets.token_urlsafe(9)
        self.core = SessionCore(self.id, principal, codec)
        self.outbox = Outbox(conn, binary=codec.binary, on_slow=self._slow_consumer)

    # --- the core's state, as features read and narrow it ---------------------------------

    @property
    def principal(self) -> Principal:
        """Who is connected (replaced by re-auth, narrowed when a key's grants shrink)."""
        return self.core.principal

    @principal.setter
    def principal(self, principal: Principal) -> None:
        self.core.principal = principal

    @property
    def subscriptions(self) -> dict[str, Subscriber]:
        """Subscribed table id -> its subscriber."""
        return self.core.subscriptions

    # --- registry protocol ----------------------------------------------------------------

    @property
    def credential_id(self) -> str:
        """The credential this connection was opened with."""
        return self.core.principal.credential_id

    @property
    def tenant(self) -> str:
        """The tenant this connection belongs to."""
        return self.core.principal.tenant

    def close_now(self, code: int, reason: str) -> None:
        """Close with ``code`` in the background (revocation, expiry, abuse)."""
        self.outbox.close(code, reason)

    def auth_refused(self, *, now: float) -> None:
        """An in-band ``auth`` was refused (answer sent): closes with 4001 if the current
        credential has expired by ``now``."""
        self.core.auth_refused(now=now)
        self.perform()

    def narrow(self, principal: Principal) -> None:
        """The key's grants shrank to ``principal``'s: drop what it may no longer read,
        tell the client (``server/hub/grants.py``)."""
        for table, sub in self.core.narrowed(principal):
            self.hub.unsubscribe(self.tenant, table, sub)
        self.perform()

    def _slow_consumer(self, unsent: int) -> None:
        log.warning(
            "slow consumer closed",
            extra={"session": self.id, "tenant": self.tenant, "unsent_bytes": unsent},
        )
        if self.services.metrics is not None:
            self.services.metrics.slow_consumer_closes += 1

    # --- writing --------------------------------------------------------------------------

    def send(self, message: Any) -> None:
        """Encode and write a message without waiting."""
        self.outbox.write(self.codec.encode(message))
        if self.services.metrics is not None:
            self.services.metrics.message_out(message)

    def perform(self) -> None:
        """Do what the core asked for since the last call: send, close."""
        for action in self.core.actions_to_perform():
            if type(action) is Send:
                self.send(action.message)
            else:
                self.close_now(action.code, action.reason)  # type: ignore[union-attr]

    async def send_paced(self, message: Any) -> None:
        """Encode and write a message, waiting for the socket to drain (large replies)."""
        await self.send_frame_paced(self.codec.encode(message))

    async def send_frame_paced(self, frame: bytes) -> None:
        """Write one encoded frame, waiting for the socket to drain; a client that takes
        nothing for ``outbox.paced_timeout`` seconds (:data:`PACED_SEND_TIMEOUT_S` by
        default) is closed as a slow consumer (4008, then aborted) and this raises
        ``ConnectionClosed``."""
        try:
            await asyncio.wait_for(
                self.conn.send(frame, text=not self.codec.binary), self.outbox.paced_timeout
            )
        except TimeoutError:
            self.outbox.slow_consumer(self.conn.transport.get_write_buffer_size())
            await asyncio.sleep(0)  # the close task queues 4008 before the handler ends
            raise ConnectionClosedError(None, None) from None

    def error(self, code: str, message: str, request: int | None = None, **extra: Any) -> None:
        """Send an ``error``."""
        self.send(Error(code=code, message=message, id=request, **extra))

    # --- main loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Greet the client, then serve its messages until the connection ends."""
        self.send(self.core.welcome(self.limits))
        try:
            while True:
                # Text frames come as str: websockets checks their UTF-8 and fails the
                # connection with 1007 (RFC 6455 section 8.1) when it is invalid.
                data = await self.conn.recv()
                await self.handle_frame(data)
        except ConnectionClosed:
            pass
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        """Drop subscriptions and presence when the connection ends."""
        subscriptions, left = self.core.ended()
        for table, sub in subscriptions:
            self.hub.unsubscribe(self.tenant, table, sub)
        for event in left:
            self.hub.presence(self.tenant, event.table, event)

    async def handle_frame(self, data: bytes | str) -> None:
        """Hand one frame (``str`` for a text frame) to the core; charge and run the
        message it admits."""
        core = self.core
        message = core.receive(data)
        if message is None:
            self.perform()
            return
        if self.admit is not None:
            refused = await self.admit(self, message)
            if refused is not None:
                core.refused(message, refused)
                self.perform()
                return
        if not core.admitted(message):
            self.perform()
            return
        try:
            await self.dispatch(message)
        except StoreError:
            core.failed(message, shutting_down=True)
            self.perform()
        except ConnectionClosed:
            raise
        except Exception:
            log.exception(
                "request failed",
                extra={
                    "type": type(message).__name__,
                    "session": self.id,
                    **connection_fields(self.conn),
                },
            )
            core.failed(message, shutting_down=False)
            self.perform()

    async def dispatch(self, message: ClientMessage) -> None:
        """Run one message's handler: the session's own, else the one its feature
        registered (``Services.handlers``)."""
        kind = type(message)
        own = _OWN_HANDLERS.get(kind)
        if own is not None:
            await own(self, message)
            return
        handler = self.services.handlers.get(kind)
        if handler is not None:
            await handler(self, message)

    # --- the session's own handlers (their rows in server/hub/messages.py) -----------------

    async def unsubscribe(self, message: Unsubscribe) -> None:
        """Stop sending a table's changes."""
        self._drop_subscription(message.table)
        self.send(Ok(id=message.id))

    async def ping(self, message: Ping) -> None:
        """Answer ``pong``."""
        self.send(Pong(id=message.id))

    async def list_tables(self, message: ListTables) -> None:
        """The tenant's tables this credential may touch."""
        async with self.stores.use(self.tenant) as store:
            await store.refresh()  # tables other hub processes created
            principal = self.principal  # as it is now (grants may narrow meanwhile)
            tables = [table_info(t) for t in store.tables() if principal.may_touch(t.id)]
        self.send(TableList(id=message.id, tables=tables))

    async def presence(self, message: Presence) -> None:
        """Relay presence state to the table's subscribers (the core checks it)."""
        event = self.core.presence(message)
        if event is None:
            self.perform()
            return
        self.hub.presence(self.tenant, message.table, event)

    # --- apply ----------------------------------------------------------------------------

    async def apply(self, message: Apply) -> None:
        """Submit a batch; the ack is written when its transaction commits."""
        store = await self.stores.lease(self.tenant)
        try:
            future = store.submit(
                message.table, message.client, message.op, message.ops, self.principal.subject
            )
        except BaseException:
            self.stores.release(store)
            raise
        started = time.perf_counter()
        future.add_done_callback(lambda f: self._applied(message, store, f, started))

    def _applied(
        self,
        message: Apply,
        store: TenantStore,
        future: asyncio.Future[BatchOutcome],
        started: float,
    ) -> None:
        self.stores.release(store)
        answer = self.core.committed(message, None if future.cancelled() else future.result())
        self.send(answer)
        if type(answer) is Ack and self.services.metrics is not None:
            self.services.metrics.acked(time.perf_counter() - started)

    # --- subscribe / query ----------------------------------------------------------------

    async def subscribe(self, message: Subscribe) -> None:
        """Send a snapshot or the missed changes, then go live."""
        rid = message.id
        if self.core.subscribe_refusal(message):
            self.perform()
            return
        async with self.stores.use(self.tenant) as store:
            state = _lookup(store, message)
            if state is None:  # perhaps created by another hub process
                await store.refresh()
                state = _lookup(store, message)
            if state is None:
                self.error("unknown_table", "no such table", rid)
                return
            if not self.principal.may_touch(state.id):
                self.error("forbidden", "this credential may not touch that table", rid)
                return
            self._drop_subscription(state.id)
            sub = Subscriber(self.outbox, self.codec.encoding, self.id, state.id)
            self.hub.subscribe(self.tenant, state.id, sub, anchor=state.version)
            self.subscriptions[state.id] = sub
            try:
                await self.hub.ready(self.tenant, state.id)  # other processes' edits reach us
                version = await self._catch_up(store, state.id, message)
            except BaseException:
                self._drop_subscription(state.id)
                raise
            if version is None:
                self._drop_subscription(state.id)
                self.error("unknown_table", "no such table", rid)
                return
        await self.send_paced(Subscribed(id=rid, table=state.id, version=version))
        sub.go_live(version)

    async def _send_frames(self, frames: list[bytes]) -> None:
        for frame in frames:
            await self.send_frame_paced(frame)

    def _drop_subscription(self, table: str) -> None:
        sub = self.subscriptions.pop(table, None)
        if sub is not None:
            self.hub.unsubscribe(self.tenant, table, sub)

    async def _catch_up(self, store: TenantStore, table: str, message: Subscribe) -> int | None:
        if message.since is not None:
            replay = await store.since(table, message.since)
            if replay is not None:
                state, changes = replay
                for start in range(0, len(changes), REPLAY_CHUNK):
                    part = changes[start : start + REPLAY_CHUNK]
                    await self._send_frames(changes_frames(self.codec, table, part))
                return state.version
        snap = await store.snapshot(table)
        if snap is None:
            return None
        info = table_info(snap.table)
        rows = snap.rows
        for start in range(0, max(len(rows), 1), SNAPSHOT_CHUNK_ROWS):
            chunk = rows[start : start + SNAPSHOT_CHUNK_ROWS]
            final = start + SNAPSHOT_CHUNK_ROWS >= len(rows)
            frames = split_encode(
                self.codec,
                chunk,
                lambda part, last, final=final: Snapshot(  # type: ignore[misc]
                    id=message.id, table=info, rows=list(part), last=final and last
                ),
            )
            await self._send_frames(frames)
        return snap.table.version

    async def query(self, message: Query) -> None:
        """Answer a page of a query (fewer rows than asked when they would not fit one
        frame; ``next`` then resumes after the last row sent)."""
        rid = message.id
        async with self.stores.use(self.tenant) as store:
            state = self._query_table(store, message.table)
            if state is None:  # perhaps created by another hub process
                await store.refresh()
                state = self._query_table(store, message.table)
            if state is None:
                return self._refuse_table(rid)
            try:
                page = await store.query(state.id, message)
            except QueryError as exc:
                self.error(exc.code, exc.message, rid)
                return
        if page is None:
            return self._refuse_table(rid)
        rows, count, more = page.rows, len(page.rows), page.more
        while True:
            frame = self.codec.encode(
                QueryResult(
                    id=rid,
                    table=state.id,
                    version=page.table.version,
                    rows=rows[:count],
                    next=page.cursor_after(count) if more and count else None,
                )
            )
            if len(frame) <= MAX_FRAME_BYTES or count <= 1:
                break
            count, more = count // 2, True
        await self._send_frames([frame])

    def _query_table(self, store: TenantStore, ref: str) -> TableState | None:
        """The table ``ref`` names for a query: a table id, else a table name, among the
        tables this credential may touch (so a name reveals nothing about the others)."""
        state = store.table(ref)
        if state is not None and self.principal.may_touch(state.id):
            return state
        named = store.table_named(ref)
        if named is not None and self.principal.may_touch(named.id):
            return named
        return None

    def _refuse_table(self, rid: int) -> None:
        self.core.table_refused(rid)
        self.perform()


def default_limits(ops_per_minute: int, burst_per_second: int) -> ServerLimits:
    """The limits announced in ``welcome``."""
    return ServerLimits(
        max_frame_bytes=MAX_FRAME_BYTES,
        max_ops_per_batch=MAX_OPS_PER_BATCH,
        ops_per_minute=ops_per_minute,
        burst_per_second=burst_per_second,
    )


def _lookup(store: TenantStore, message: Subscribe) -> TableState | None:
    """The live table a subscribe names, by id or by name."""
    if message.table is not None:
        return store.table(message.table)
    return store.table_named(message.name or "")


def _own_handlers() -> dict[type, Callable[[Session, Any], Awaitable[None]]]:
    """The session's own handlers, by message type, as the message table names them."""
    prefix = f"{__name__}:{Session.__name__}."
    return {
        row.kind: getattr(Session, row.handler.removeprefix(prefix))
        for row in TABLE
        if row.handler.startswith(prefix)
    }


_OWN_HANDLERS = _own_handlers()
