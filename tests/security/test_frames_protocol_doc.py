"""Behaviours docs/protocol.md promises a client author, checked on the wire."""

from __future__ import annotations

from typing import Any

import pytest
from frames_helpers import RawSocket
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from protocol.codec import JSON, MSGPACK
from protocol.messages import (
    Ack,
    Apply,
    Changes,
    Ping,
    Pong,
    Query,
    QueryResult,
    Snapshot,
    Subscribe,
    Subscribed,
    Welcome,
)
from protocol.ops import ColumnDef, ColumnType, CreateTable, InsertRows, NewRow, UpdateCells

COLUMNS = [ColumnDef(id="n", name="N", type=ColumnType.NUMBER)]


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ((), None),
        (("chat.v2",), None),
        (("chat.v2", JSON, MSGPACK), JSON),
        ((MSGPACK, JSON), MSGPACK),
    ],
)
async def test_subprotocol_is_the_first_known_in_client_order_else_json(
    hub: Any, tenant: Any, offered: tuple[str, ...], chosen: str | None
) -> None:
    _, key = tenant
    raw = await RawSocket.open(hub.port, key, offered)
    assert raw.subprotocol == chosen
    welcome = await raw.recv()
    assert isinstance(welcome, Welcome) and welcome.encoding == (chosen or JSON)
    raw.abort()


async def test_with_a_header_the_bearer_entry_is_ignored(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    with pytest.raises(InvalidStatus) as refused:
        await connect(
            hub_url,
            additional_headers={"Authorization": "Bearer ht_live_not_a_key"},
            subprotocols=[JSON, f"hypertab.bearer.{key}"],  # type: ignore[list-item]
        )
    assert refused.value.response.status_code == 401
    conn = await connect(
        hub_url,
        additional_headers={"Authorization": f"Bearer {key}"},
        subprotocols=[JSON, "hypertab.bearer.garbage"],  # type: ignore[list-item]
    )
    assert conn.subprotocol == JSON
    await conn.close()


async def test_batches_without_subscribing_get_acks_only(hub: Any, tenant: Any) -> None:
    _, key = tenant
    raw = await RawSocket.open(hub.port, key, (MSGPACK,))
    await raw.recv()
    create = [
        CreateTable(name="T", columns=COLUMNS),
        InsertRows(rows=[NewRow(id="r1", values={"n": 1})]),
    ]
    await raw.send_message(Apply(id=1, table="t", client="c", op="o1", ops=create))
    assert await raw.recv() == Ack(id=1, op="o1", version=1)  # one batch: version 1
    # The same (client, op) with other ops: acknowledged as the first, not applied.
    other = [UpdateCells(row="r1", values={"n": 99})]
    await raw.send_message(Apply(id=2, table="t", client="c", op="o1", ops=other))
    assert await raw.recv() == Ack(id=2, op="o1", version=1, duplicate=True)
    await raw.send_message(Query(id=3, table="t"))
    page = await raw.recv()  # no changes frame came before it: not subscribed
    assert isinstance(page, QueryResult)
    assert [(r.id, r.values) for r in page.rows] == [("r1", {"n": 1})]
    raw.abort()


async def test_since_zero_replays_and_since_ahead_gets_a_snapshot(hub: Any, tenant: Any) -> None:
    _, key = tenant
    raw = await RawSocket.open(hub.port, key, (JSON,))
    await raw.recv()
    await raw.send_message(
        Apply(id=1, table="t", client="c", op="o1", ops=[CreateTable(name="T", columns=COLUMNS)])
    )
    await raw.recv()
    await raw.send_message(
        Apply(id=2, table="t", client="c", op="o2", ops=[InsertRows(rows=[NewRow(id="r")])])
    )
    await raw.recv()
    await raw.send_message(Subscribe(id=3, table="t", since=0))
    replay = await raw.recv()
    assert isinstance(replay, Changes)
    assert [c.version for c in replay.changes] == [1, 2]
    assert await raw.recv() == Subscribed(id=3, table="t", version=2)
    await raw.send_message(Subscribe(id=4, table="t", since=50))
    snapshot = await raw.recv()
    assert isinstance(snapshot, Snapshot) and snapshot.last and snapshot.table.version == 2
    assert await raw.recv() == Subscribed(id=4, table="t", version=2)
    await raw.send_message(Ping(id=5))
    assert await raw.recv() == Pong(id=5)
    raw.abort()
