"""The SDK's table surface against a real hub: names, bulk inserts, schema helpers, events."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from client_sdk import Client, RowEvent, ServerError


async def test_get_or_create_table_is_idempotent(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        first = await client.get_or_create_table("People", [("Name", "text")])
        again = await client.get_or_create_table("People", [("Name", "text")])
        assert again.id == first.id
        with pytest.raises(ServerError) as refused:
            await client.create_table("People", [("Name", "text")])
        assert refused.value.code == "table_exists"
    async with await Client.connect(hub_url, api_key=key) as other:
        assert (await other.get_or_create_table("People")).id == first.id


async def test_records_by_name_follow_a_rename_made_elsewhere(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with (
        await Client.connect(hub_url, api_key=key) as alice,
        await Client.connect(hub_url, api_key=key) as bob,
    ):
        people = await alice.create_table(
            "People", [("名前", "text"), ("a.b", "number"), ("a b", "number")]
        )
        assert len({c.id for c in people.columns}) == 3
        rid = await people.insert({"名前": "エイダ", "a.b": 1, "a b": 2})
        watched = await bob.table("People")
        assert [r.to_dict() for r in watched.records()] == [
            {"_id": rid, "名前": "エイダ", "a.b": 1, "a b": 2}
        ]
        await people.rename_column("名前", "Name")
        await bob.ping()
        for _ in range(50):
            if "Name" in (watched.record(rid) or {}):
                break
            await asyncio.sleep(0.02)
        assert dict(watched.record(rid) or {}) == {"Name": "エイダ", "a.b": 1, "a b": 2}
        await watched.update(rid, {"Name": "Ada"})  # by the new name
        assert people.record(rid)["Name"] == "Ada"  # type: ignore[index]


async def test_bulk_inserts_and_schema_helpers_without_protocol_imports(
    hub_url: str, tenant: Any
) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        items = await client.create_table("Items", [("Name", "text"), ("Price", "number")])
        ids = await items.insert_many({"Name": f"item {i}", "Price": i} for i in range(2500))
        assert len(ids) == len(set(ids)) == 2500
        assert [r["Price"] for r in items.records()] == list(range(2500))
        cid = await items.add_column("Double", formula="{Price} * 2")
        assert items.record(ids[3])["Double"] == 6  # type: ignore[index]
        await items.set_formula("Double", "{Price} * 3")
        assert items.record(ids[3])["Double"] == 9  # type: ignore[index]
        await items.add_column("Note")
        await items.rename_column("Note", "Remark")
        await items.drop_column("Remark")
        assert [c.name for c in items.columns] == ["Name", "Price", "Double"]
        assert items.column_id("Double") == cid
        await items.delete(*ids[:1500])
        assert len(items.rows) == 1000
        with pytest.raises(KeyError):
            await items.rename_column("Nope", "x")


async def test_row_events_carry_names_and_what_changed(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with (
        await Client.connect(hub_url, api_key=key) as writer,
        await Client.connect(hub_url, api_key=key) as reader,
    ):
        table = await writer.create_table("Log", [("Name", "text"), ("Age", "number")])
        watched = await reader.table(table.id)
        feed = watched.row_changes()
        rid = await table.insert({"Name": "Ada", "Age": 36})
        await table.update(rid, {"Age": 37})
        await table.delete(rid)
        events: list[RowEvent] = [await asyncio.wait_for(anext(feed), 5) for _ in range(3)]
        await feed.aclose()
        assert [(e.kind, e.row, e.changed) for e in events] == [
            ("inserted", rid, ("Name", "Age")),
            ("updated", rid, ("Age",)),
            ("deleted", rid, ()),
        ]
        assert dict(events[1].values) == {"Name": "Ada", "Age": 37}
        assert dict(events[2].values) == {"Name": "Ada", "Age": 37}
        assert events[0].by == writer.welcome.subject  # type: ignore[union-attr]
