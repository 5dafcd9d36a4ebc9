"""A change that skips versions makes the SDK resubscribe from its replica's version
rather than apply it and lose the versions between (the hub orders every change, so this
is the SDK not trusting it).

The peer is a real websockets server speaking the protocol: after the client is live at
version 1 it sends version 3 alone, then answers the client's resubscription with the
replay of versions 2 and 3, as a hub answers ``since``."""

from __future__ import annotations

import asyncio

from fake_peer import CODEC, welcome
from websockets.asyncio.server import ServerConnection, serve

from client_sdk import Client
from protocol.codec import MSGPACK
from protocol.messages import (
    Change,
    Changes,
    ListTables,
    Snapshot,
    Subscribe,
    Subscribed,
    TableInfo,
    TableList,
)
from protocol.ops import InsertRows, NewRow

INFO = TableInfo(id="t1", name="Log", version=1)


def _insert(version: int) -> Change:
    row = NewRow(id=f"r{version}", values={"n": version}, order=f"a{version}")
    return Change(version=version, ops=[InsertRows(rows=[row])])


class Peer:
    def __init__(self) -> None:
        self.resubscribed_since: list[int | None] = []

    async def __call__(self, conn: ServerConnection) -> None:
        await conn.send(welcome())
        async for frame in conn:
            match CODEC.decode_client(frame):
                case ListTables(id=rid):
                    await conn.send(CODEC.encode(TableList(id=rid, tables=[INFO])))
                case Subscribe(id=rid, since=None):
                    await conn.send(CODEC.encode(Snapshot(id=rid, table=INFO, rows=[], last=True)))
                    await conn.send(CODEC.encode(Subscribed(id=rid, table="t1", version=1)))
                    skipped = Changes(table="t1", changes=[_insert(3)])  # version 2 never sent
                    await conn.send(CODEC.encode(skipped))
                    await conn.send(CODEC.encode(skipped))  # and again: still one resubscribe
                case Subscribe(id=rid, since=since):
                    self.resubscribed_since.append(since)
                    replay = Changes(table="t1", changes=[_insert(2), _insert(3)])
                    await conn.send(CODEC.encode(replay))
                    await conn.send(CODEC.encode(Subscribed(id=rid, table="t1", version=3)))


async def test_a_change_that_skips_versions_resubscribes_and_loses_nothing() -> None:
    peer = Peer()
    async with serve(peer, "127.0.0.1", 0, subprotocols=[MSGPACK]) as server:  # type: ignore[list-item]
        port = server.sockets[0].getsockname()[1]
        client = await Client.connect(f"ws://127.0.0.1:{port}/v1/ws", api_key="ht_live_x_y")
        try:
            table = await client.table("Log")
            async with asyncio.timeout(10):
                while table.version < 3 or not table.live.is_set():
                    await asyncio.sleep(0.01)
            assert table.rows == {"r2": {"n": 2}, "r3": {"n": 3}}
            assert peer.resubscribed_since == [1]
        finally:
            await client.close()
