"""Bulk edits on the server-side filter: update_where / delete_where, with a cap."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from client_sdk import Client, SyncClient, TooManyRows


async def test_update_and_delete_where_follow_the_servers_filter(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        people = await client.create_table("People", [("Name", "text"), ("Age", "number")])
        await people.insert_many({"Name": f"p{i}", "Age": i} for i in range(30))
        older = {"op": "ge", "column": "Age", "value": 20}
        with pytest.raises(TooManyRows):
            await people.update_where(older, {"Name": "old"}, max_rows=5)
        assert all(not r["Name"].startswith("old") for r in people.records())  # nothing changed
        assert await people.update_where(older, {"Name": "old"}) == 10
        names = [r["Name"] for r in people.records()]
        assert names[:20] == [f"p{i}" for i in range(20)] and names[20:] == ["old"] * 10
        young = {
            "op": "or",
            "args": [
                {"op": "lt", "column": "Age", "value": 3},
                {"op": "eq", "column": "Name", "value": "p29"},
            ],
        }
        assert await people.delete_where(young) == 3
        assert await people.delete_where({"op": "eq", "column": "Name", "value": "nobody"}) == 0
        assert len(people.rows) == 27


def _sync(hub_url: str, key: str) -> list[Any]:
    with SyncClient.connect(hub_url, api_key=key) as client:
        table = client.get_or_create_table("T", [("N", "number")])
        table.insert_many([{"N": n} for n in range(10)])
        changed = table.update_where({"op": "in", "column": "N", "values": [1, 2]}, {"N": 100})
        page = client.query("T", where={"op": "eq", "column": "N", "value": 100}, columns=["N"])
        every = list(client.query_all("T", order_by=[("N", True)], page_size=3))
        return [changed, len(page.rows), [r.values.get("N") for r in every][:3]]


async def test_the_sync_client_queries_too(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    assert await asyncio.to_thread(_sync, hub_url, key) == [2, 2, [100, 100, 9]]
