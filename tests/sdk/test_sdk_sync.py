"""The sync client's surface beyond the README: events, schema, errors, keys (run in a
worker thread, as a script would, while the hub runs on the test's loop)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from client_sdk import ServerError, SyncClient


def _script(hub_url: str, key: str) -> list[Any]:
    seen: list[Any] = []
    with SyncClient.connect(hub_url, api_key=key) as client:
        table = client.get_or_create_table("Tasks", [("Title", "text"), ("Done", "boolean")])
        events = table.row_changes(timeout=5)
        ids = table.insert_many([{"Title": "a"}, {"Title": "b"}])
        table.update(ids[0], {"Done": True})
        seen.extend((e.kind, e.values.get("Title")) for e in [next(events) for _ in range(3)])
        events.close()
        table.rename_column("Title", "Name")
        seen.append(sorted(r["Name"] for r in table.records()))
        with pytest.raises(ServerError) as refused:
            client.create_table("Tasks")
        seen.append(refused.value.code)
        seen.append([k.name for k in client.keys.list()])
    return seen


async def test_sync_client_events_schema_and_errors(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    seen = await asyncio.to_thread(_script, hub_url, key)
    assert seen == [
        ("inserted", "a"),
        ("inserted", "b"),
        ("updated", "a"),
        ["a", "b"],
        "table_exists",
        ["admin"],
    ]
