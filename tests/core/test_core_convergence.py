"""Concurrent editing through the SDK: every replica converges to the server's state."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from client_sdk import Client, ServerError


async def server_rows(url: str, key: str, table: str) -> dict[str, dict[str, Any]]:
    async with await Client.connect(url, api_key=key) as reader:
        page = await reader.query(table, limit=5000)
        return {row.id: row.values for row in page.rows}


async def test_two_clients_converge(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    a = await Client.connect(hub_url, api_key=key)
    b = await Client.connect(hub_url, api_key=key, encoding="hypertab.v1.json")
    try:
        ta = await a.create_table("Grid", [("Name", "text"), ("Score", "number")])
        tb = await b.table("Grid")
        seed = [await ta.insert({"Name": f"r{i}", "Score": 0}, row_id=f"r{i}") for i in range(20)]
        rng = random.Random(1)

        async def edits(table: Any, who: str) -> None:
            for n in range(150):
                choice = rng.random()
                row = rng.choice(seed)
                try:
                    if choice < 0.7:
                        await table.update(row, {"Score": n, "Name": who})
                    elif choice < 0.85:
                        await table.insert({"Name": who, "Score": n})
                    else:
                        await table.move(row, after=rng.choice(seed))
                except ServerError as exc:  # moving next to itself is refused
                    assert exc.code == "invalid_op"

        await asyncio.gather(edits(ta, "a"), edits(tb, "b"))
        await a.ping()
        await b.ping()
        while ta.version != tb.version:
            await asyncio.sleep(0.01)
        truth = await server_rows(hub_url, key, ta.id)
        assert ta.rows == truth
        assert tb.rows == truth
        assert [r.id for r in ta.ordered_rows()] == [r.id for r in tb.ordered_rows()]
    finally:
        await a.close()
        await b.close()


async def test_deleted_row_stays_deleted(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        table = await client.create_table("T", [("Name", "text")])
        row = await table.insert({"Name": "x"})
        await table.delete(row)
        for attempt in (
            table.update(row, {"Name": "y"}),
            table.insert({"Name": "again"}, row_id=row),
            table.delete(row),
        ):
            try:
                await attempt
            except ServerError as exc:
                assert exc.code == "row_deleted"
            else:  # pragma: no cover
                raise AssertionError("an edit to a deleted row was accepted")
        assert row not in table.rows


async def test_versions_are_gap_free_and_in_order(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with (
        await Client.connect(hub_url, api_key=key) as writer,
        await Client.connect(hub_url, api_key=key) as watcher,
    ):
        table = await writer.create_table("V", [("N", "number")])
        watched = await watcher.table("V")
        seen: list[int] = []

        async def watch() -> None:
            async for change in watched.changes():
                seen.append(change.version)
                if change.version == 201:
                    return

        task = asyncio.create_task(watch())
        await asyncio.sleep(0)
        versions = await asyncio.gather(*(table.insert({"N": i}) for i in range(200)))
        assert len(set(versions)) == 200
        await asyncio.wait_for(task, 10)
        assert seen == list(range(2, 202))
