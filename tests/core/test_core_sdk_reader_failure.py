"""A client whose reader meets something it cannot handle fails its callers with
ConnectionLost (the cause chained) instead of leaving them waiting for ever.

The peer is a real websockets server that speaks the protocol but, once the client follows
a table, sends a change no Hypertab server sends: a rename of a column the table lacks."""

from __future__ import annotations

import asyncio

import pytest
from fake_peer import LOG, send, welcome
from websockets.asyncio.server import ServerConnection, serve

from client_sdk import Client, ConnectionLost
from protocol.codec import MSGPACK, codec_for
from protocol.messages import (
    Change,
    Changes,
    ListTables,
    Ping,
    Snapshot,
    Subscribe,
    Subscribed,
    TableList,
)
from protocol.ops import RenameColumn

CODEC = codec_for(MSGPACK)


async def _peer(conn: ServerConnection) -> None:
    await send(conn, CODEC, welcome(CODEC))
    async for frame in conn:
        match CODEC.decode_client(frame):
            case ListTables(id=rid):
                await send(conn, CODEC, TableList(id=rid, tables=[LOG]))
            case Subscribe(id=rid):
                await send(conn, CODEC, Snapshot(id=rid, table=LOG, rows=[], last=True))
                await send(conn, CODEC, Subscribed(id=rid, table="t1", version=1))
                bad = Change(version=2, ops=[RenameColumn(column="nope", name="x")])
                await send(conn, CODEC, Changes(table="t1", changes=[bad]))
            case Ping():
                pass  # never answered: the caller's only way out is the reader's failure


async def test_a_change_the_replica_cannot_apply_fails_callers_instead_of_hanging() -> None:
    async with serve(_peer, "127.0.0.1", 0, subprotocols=[MSGPACK]) as server:  # type: ignore[list-item]
        port = server.sockets[0].getsockname()[1]
        client = await Client.connect(f"ws://127.0.0.1:{port}/v1/ws", api_key="ht_live_x_y")
        try:
            await client.table("Log")
            with pytest.raises(ConnectionLost, match="reader failed: KeyError") as failed:
                await asyncio.wait_for(client.ping(), 10)
            assert isinstance(failed.value.__cause__, KeyError)
        finally:
            await client.close()  # returns: the failure was reported, not left to re-raise
