"""Tables over the WebSocket: the handlers of the session's own messages.

``apply`` (submit a batch, ack it from its commit), ``subscribe`` (a snapshot or the missed
changes, then live), ``unsubscribe``, ``query`` (a page), ``list_tables``, ``presence``, and
``ping``. :func:`register` installs them in ``Services.handlers`` like every feature's
(their rows in ``server/hub/messages.py`` name them). The rules they apply come from the
session's core (``session.core``); what they do here is the I/O: the store, the fan-out hub,
paced writes of large answers.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from protocol.limits import MAX_FRAME_BYTES, SNAPSHOT_CHUNK_ROWS
from protocol.messages import (
    Ack,
    Apply,
    ListTables,
    Ok,
    Ping,
    Pong,
    Presence,
    Query,
    QueryResult,
    Snapshot,
    Subscribe,
    Subscribed,
    TableInfo,
    TableList,
    Unsubscribe,
)
from server.engine.catalog import TableState
from server.hub.fanout import Subscriber
from server.hub.frames import changes_frames, split_encode
from server.store.query import QueryError
from server.store.tenant import TenantStore
from server.store.writer import BatchOutcome

if TYPE_CHECKING:
    from server.hub.services import Services
    from server.hub.session import Session

REPLAY_CHUNK = 500
"""Changes per frame when replaying the op log to a resuming subscriber."""


def register(services: Services) -> None:
    """Install the handlers of the session's own messages."""
    services.handlers[Apply] = apply
    services.handlers[Subscribe] = subscribe
    services.handlers[Unsubscribe] = unsubscribe
    services.handlers[Query] = query
    services.handlers[ListTables] = list_tables
    services.handlers[Presence] = presence
    services.handlers[Ping] = ping


def table_info(state: TableState) -> TableInfo:
    """A table as the wire describes it."""
    return TableInfo(
        id=state.id,
        name=state.name,
        version=state.version,
        columns=[c.to_def() for c in state.columns],
    )


# --- apply --------------------------------------------------------------------------------


async def apply(session: Session, message: Apply) -> None:
    """Submit a batch; the ack is written when its transaction commits."""
    stores = session.stores
    store = await stores.lease(session.tenant)
    try:
        future = store.submit(
            message.table, message.client, message.op, message.ops, session.principal.subject
        )
    except BaseException:
        stores.release(store)
        raise
    started = time.perf_counter()
    future.add_done_callback(lambda f: _applied(session, message, store, f, started))


def _applied(
    session: Session,
    message: Apply,
    store: TenantStore,
    future: asyncio.Future[BatchOutcome],
    started: float,
) -> None:
    session.stores.release(store)
    answer = session.core.committed(message, None if future.cancelled() else future.result())
    session.send(answer)
    metrics = session.services.metrics
    if type(answer) is Ack and metrics is not None:
        metrics.acked(time.perf_counter() - started)


# --- subscriptions and presence -----------------------------------------------------------


async def subscribe(session: Session, message: Subscribe) -> None:
    """Send a snapshot or the missed changes, then go live."""
    rid = message.id
    if not session.core.subscribe_valid(message):
        session.perform()
        return
    tenant, hub = session.tenant, session.hub
    async with session.stores.use(tenant) as store:
        state = _lookup(store, message)
        if state is None:  # perhaps created by another hub process
            await store.refresh()
            state = _lookup(store, message)
        if state is None:
            session.error("unknown_table", "no such table", rid)
            return
        if not session.principal.may_touch(state.id):
            session.error("forbidden", "this credential may not touch that table", rid)
            return
        session.drop_subscription(state.id)
        sub = Subscriber(session.outbox, session.codec.encoding, session.id, state.id)
        hub.subscribe(tenant, state.id, sub, anchor=state.version)
        session.subscriptions[state.id] = sub
        try:
            await hub.ready(tenant, state.id)  # other processes' edits reach us
            version = await _catch_up(session, store, state.id, message)
        except BaseException:
            session.drop_subscription(state.id)
            raise
        if version is None:
            session.drop_subscription(state.id)
            session.error("unknown_table", "no such table", rid)
            return
    await session.send_paced(Subscribed(id=rid, table=state.id, version=version))
    sub.go_live(version)


async def _catch_up(
    session: Session, store: TenantStore, table: str, message: Subscribe
) -> int | None:
    codec = session.codec
    if message.since is not None:
        replay = await store.since(table, message.since)
        if replay is not None:
            state, changes = replay
            for start in range(0, len(changes), REPLAY_CHUNK):
                part = changes[start : start + REPLAY_CHUNK]
                await session.send_frames_paced(changes_frames(codec, table, part))
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
            codec,
            chunk,
            lambda part, last, final=final: Snapshot(  # type: ignore[misc]
                id=message.id, table=info, rows=list(part), last=final and last
            ),
        )
        await session.send_frames_paced(frames)
    return snap.table.version


def _lookup(store: TenantStore, message: Subscribe) -> TableState | None:
    """The live table a subscribe names, by id or by name."""
    if message.table is not None:
        return store.table(message.table)
    return store.table_named(message.name or "")


async def unsubscribe(session: Session, message: Unsubscribe) -> None:
    """Stop sending a table's changes."""
    session.drop_subscription(message.table)
    session.send(Ok(id=message.id))


async def presence(session: Session, message: Presence) -> None:
    """Relay presence state to the table's subscribers (the core checks it)."""
    event = session.core.presence(message)
    if event is None:
        session.perform()
        return
    session.hub.presence(session.tenant, message.table, event)


# --- reads --------------------------------------------------------------------------------


async def query(session: Session, message: Query) -> None:
    """Answer a page of a query (fewer rows than asked when they would not fit one
    frame; ``next`` then resumes after the last row sent)."""
    rid = message.id
    async with session.stores.use(session.tenant) as store:
        state = _query_table(session, store, message.table)
        if state is None:  # perhaps created by another hub process
            await store.refresh()
            state = _query_table(session, store, message.table)
        if state is None:
            session.core.table_refused(rid)
            session.perform()
            return
        try:
            page = await store.query(state.id, message)
        except QueryError as exc:
            session.error(exc.code, exc.message, rid)
            return
    if page is None:
        session.core.table_refused(rid)
        session.perform()
        return
    rows, count, more = page.rows, len(page.rows), page.more
    while True:
        frame = session.codec.encode(
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
    await session.send_frames_paced([frame])


def _query_table(session: Session, store: TenantStore, ref: str) -> TableState | None:
    """The table ``ref`` names for a query: a table id, else a table name, among the
    tables this credential may touch (so a name reveals nothing about the others)."""
    principal = session.principal
    state = store.table(ref)
    if state is not None and principal.may_touch(state.id):
        return state
    named = store.table_named(ref)
    if named is not None and principal.may_touch(named.id):
        return named
    return None


async def list_tables(session: Session, message: ListTables) -> None:
    """The tenant's tables this credential may touch."""
    async with session.stores.use(session.tenant) as store:
        await store.refresh()  # tables other hub processes created
        principal = session.principal  # as it is now (grants may narrow meanwhile)
        tables = [table_info(t) for t in store.tables() if principal.may_touch(t.id)]
    session.send(TableList(id=message.id, tables=tables))


async def ping(session: Session, message: Ping) -> None:
    """Answer ``pong`` (the liveness check every connection has)."""
    session.send(Pong(id=message.id))
