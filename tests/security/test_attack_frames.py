"""Attacks with WebSocket frames (docs/security.md, FR-*): each gets its documented error or
close code, changes nothing, and leaves the connection's tenant and others working."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from attack_helpers import Wire, closed_with, raw_http, upgrade_request, ws_url

from protocol.codec import JSON
from protocol.errors import CloseCode
from protocol.messages import (
    Ack,
    Apply,
    Error,
    Ping,
    Pong,
    Presence,
    PresenceEvent,
    Subscribe,
    Subscribed,
)
from protocol.ops import ColumnDef, ColumnType, CreateTable, InsertRows, NewRow


async def _table(wire: Wire, table: str = "t1") -> None:
    op = CreateTable(name=table, columns=[ColumnDef(id="n", name="N", type=ColumnType.NUMBER)])
    await wire.send(Apply(id=1, table=table, client="c", op=f"create-{table}", ops=[op]))
    assert isinstance(await wire.answer(), Ack)


async def _still_works(wire: Wire) -> None:
    await wire.send(Ping(id=4242))
    assert await wire.answer() == Pong(id=4242)


async def test_fr04_fragmented_oversized_message_closes_1009(hub: Any, tenant: Any) -> None:
    _, key = tenant
    wire = await Wire.open(ws_url(hub), key, max_size=None)
    fragment = b"\x00" * (64 << 10)

    def fragments() -> Iterator[bytes]:
        for _ in range(24):  # 1.5 MiB in continuation frames, each one small
            yield fragment

    with pytest.raises(Exception):  # noqa: B017 - the server closes mid-message
        await wire.conn.send(fragments())
        await wire.recv()
    assert await closed_with(wire.conn) == CloseCode.MESSAGE_TOO_BIG
    other = await Wire.open(ws_url(hub), key)
    await _still_works(other)
    await other.close()


async def test_fr05_compression_is_never_negotiated(hub: Any, tenant: Any) -> None:
    _, key = tenant
    offer = "permessage-deflate; client_max_window_bits; server_max_window_bits=15"
    response = await raw_http(
        hub.port,
        upgrade_request(
            headers=[("Authorization", f"Bearer {key}"), ("Sec-WebSocket-Extensions", offer)]
        ),
    )
    assert response.status == 101
    assert "sec-websocket-extensions" not in response.headers
    wire = await Wire.open(ws_url(hub), key, compression="deflate")  # the client asks
    assert wire.conn.protocol.extensions == []
    await _still_works(wire)
    await wire.close()


@pytest.mark.parametrize("rid", [-1, 2**53 + 1, 2**63, "7", 1.5, True, None, [1], {"id": 1}])
async def test_fr07_hostile_request_ids_are_not_echoed(hub: Any, tenant: Any, rid: Any) -> None:
    _, key = tenant
    wire = await Wire.open(ws_url(hub), key, JSON)
    await wire.conn.send(msgspec.json.encode({"type": "ping", "id": rid}).decode())
    error = await wire.answer()
    assert isinstance(error, Error)
    assert error.code == "bad_message" and error.id is None
    await _still_works(wire)
    await wire.close()


@pytest.mark.parametrize(
    "op",
    [
        {"type": "insert_rows", "rows": [{"values": {"n": 1}}], "sql": "DROP TABLE t_1"},
        {"type": "insert_rows", "rows": [{"values": {"n": 1}, "_ord": "0"}]},
        {"type": "update_cells", "row": "r1", "values": {"n": 1}, "where": "1=1"},
        {"type": "create_table", "name": "X", "columns": [], "sql": "t_1"},
        {"type": "drop_table", "cascade": True},
        {"type": "exec", "code": "__import__('os')"},
    ],
)
async def test_fr14_unknown_fields_inside_ops_are_refused(
    hub: Any, tenant: Any, op: dict[str, Any]
) -> None:
    _, key = tenant
    wire = await Wire.open(ws_url(hub), key, JSON)
    await _table(wire)
    frame = {"type": "apply", "id": 5, "table": "t1", "client": "c", "op": "x", "ops": [op]}
    await wire.conn.send(msgspec.json.encode(frame).decode())
    error = await wire.answer()
    assert isinstance(error, Error) and error.id == 5
    assert (error.code, error.op_index) == ("invalid_op", 0)  # named like the engine's refusals
    await wire.send(Subscribe(id=6, table="t1"))
    answers = [await wire.answer() for _ in range(2)]
    subscribed = answers[-1]
    assert isinstance(subscribed, Subscribed) and subscribed.version == 1  # nothing applied
    await wire.close()


async def test_fr15_presence_state_over_32_keys_is_refused_and_not_fanned_out(
    hub: Any, tenant: Any
) -> None:
    _, key = tenant
    url = ws_url(hub)
    sender, watcher = await Wire.open(url, key), await Wire.open(url, key)
    await _table(sender)
    for wire, rid in ((sender, 2), (watcher, 3)):
        await wire.send(Subscribe(id=rid, table="t1"))
        while not isinstance(await wire.answer(), Subscribed):
            pass
    await sender.send(Presence(table="t1", state={f"k{i}": i for i in range(33)}))
    error = await sender.answer()
    assert isinstance(error, Error) and error.code == "bad_message"
    await sender.send(Presence(table="t1", state={"cursor": "A1"}))  # a legal one arrives
    event = await watcher.recv()
    assert isinstance(event, PresenceEvent) and event.state == {"cursor": "A1"}
    await sender.send(
        Apply(id=9, table="t1", client="c", op="r", ops=[InsertRows(rows=[NewRow()])])
    )
    assert isinstance(await sender.answer(), Ack)
    await asyncio.gather(sender.close(), watcher.close())
