"""Batches in flight when the connection drops are resent by the SDK with the same ids and
applied exactly once, whether or not the server had committed them."""

from __future__ import annotations

import asyncio
from typing import Any

from client_sdk import Client
from protocol.errors import CloseCode


async def test_in_flight_batches_are_resent_and_applied_once(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, key = tenant
    client = await Client.connect(hub_url, api_key=key, max_backoff=0.2)
    try:
        table = await client.create_table("T", [("N", "number")])
        store = await hub.stores.lease(record.id)
        try:
            async with store.exclusive():  # the writer is paused: batches queue, no acks
                inserts = [
                    asyncio.create_task(table.insert({"N": i}, row_id=f"r{i}")) for i in range(5)
                ]
                await asyncio.sleep(0.3)  # all five reached the server
                for session in hub.registry.of_tenant(record.id):
                    session.close_now(CloseCode.INTERNAL, "test: drop the connection")
                await asyncio.sleep(0.3)  # the SDK reconnects and resends the same batches
        finally:
            hub.stores.release(store)
        assert sorted(await asyncio.wait_for(asyncio.gather(*inserts), 20)) == [
            f"r{i}" for i in range(5)
        ]
        assert client.connections == 2
        await client.ping()
        page = await client.query(table.id)
        assert [r.id for r in page.rows] == [f"r{i}" for i in range(5)]
        assert page.version == 6  # create + five inserts: none applied twice
        while table.version < 6:
            await asyncio.sleep(0.01)
        assert table.rows == {f"r{i}": {"N": i} for i in range(5)}
    finally:
        await client.close()
