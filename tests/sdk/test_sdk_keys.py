"""A client whose key was revoked waits for a new key instead of retrying the dead one."""

from __future__ import annotations

import asyncio
from typing import Any

from client_sdk import Client


async def test_a_revoked_key_is_not_retried_until_a_new_one_is_given(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    _, admin_key = tenant
    async with await Client.connect(hub_url, api_key=admin_key) as admin:
        table = await admin.create_table("T", [("A", "text")])
        agent = await admin.keys.create("agent", ["tables:read", "tables:write"])
        async with await Client.connect(hub_url, api_key=agent.secret, max_backoff=0.02) as bot:
            mine = await bot.table(table.id)
            before = sum(hub.metrics.auth_failures.values())
            fresh = await admin.keys.rotate(agent.info.id)
            await asyncio.sleep(0.5)  # ~25 reconnect attempts at this backoff, if it retried
            assert sum(hub.metrics.auth_failures.values()) == before
            assert bot.connections == 1
            await table.insert({"A": "while away"})
            bot.set_api_key(fresh.secret)
            for _ in range(100):
                if len(mine.rows) == 1:
                    break
                await asyncio.sleep(0.02)
            assert bot.connections == 2
            assert [dict(r) for r in mine.records()] == [{"A": "while away"}]  # resumed
