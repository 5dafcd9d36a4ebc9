"""Smoke test of the fixtures: a client connects, creates a table and sees its own insert."""

from __future__ import annotations

from typing import Any

from client_sdk import Client


async def test_create_insert_roundtrip(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        table = await client.create_table("People", [("Name", "text")])
        row = await table.insert({"Name": "Ada"})
        assert table.rows[row] == {"Name": "Ada"}
