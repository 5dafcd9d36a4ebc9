"""A change that skips versions makes the SDK resubscribe from its replica's version
rather than apply it and lose the versions between (the hub orders every change, so this
is the SDK not trusting it). The peer: ``tests/fake_peer.py`` ``SkipsAVersion``."""

from __future__ import annotations

import asyncio

from fake_peer import SkipsAVersion
from websockets.asyncio.server import serve

from client_sdk import Client
from protocol.codec import MSGPACK, codec_for


async def test_a_change_that_skips_versions_resubscribes_and_loses_nothing() -> None:
    peer = SkipsAVersion(codec_for(MSGPACK))
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
