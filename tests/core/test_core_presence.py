"""Presence: ephemeral state reaches the table's other subscribers, and leaving is announced."""

from __future__ import annotations

import asyncio
from typing import Any

from core_wire import Wire

from client_sdk import Client
from protocol.messages import Error, Presence, PresenceEvent


async def test_presence_fans_out_and_leaving_is_announced(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    alice = await Client.connect(hub_url, api_key=key)
    bob = await Client.connect(hub_url, api_key=key)
    try:
        table = await alice.create_table("Sheet", [("A", "text")])
        bobs = await bob.table(table.id)
        await table.set_presence({"cursor": {"row": "r1", "column": "A"}})
        event = await asyncio.wait_for(bob.presence_events.get(), 5)
        assert isinstance(event, PresenceEvent)
        assert event.table == table.id and event.state == {"cursor": {"row": "r1", "column": "A"}}
        assert alice.welcome is not None and event.session == alice.welcome.session
        await bobs.set_presence({"selection": ["r1"]})
        mine = await asyncio.wait_for(alice.presence_events.get(), 5)
        assert mine.state == {"selection": ["r1"]}
        await alice.ping()
        assert alice.presence_events.empty()  # no echo of one's own presence
        await alice.close()
        left = await asyncio.wait_for(bob.presence_events.get(), 5)
        assert left.session == event.session and left.state is None
    finally:
        await alice.close()
        await bob.close()


async def test_presence_needs_a_subscription(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        table = await client.create_table("Sheet", [("A", "text")])
        wire = await Wire.open(hub_url, key)
        await wire.send(Presence(table=table.id, state={"x": 1}))
        error = await wire.recv()
        assert isinstance(error, Error) and error.code == "not_subscribed"
        await wire.close()
