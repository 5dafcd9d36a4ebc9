"""Two tenants' data never mix."""

from __future__ import annotations

import time
from typing import Any

import pytest

from client_sdk import Client, ServerError
from protocol.ops import UpdateCells


async def test_tenants_are_isolated(hub: Any, hub_url: str, tenant: Any) -> None:
    _, key_a = tenant
    _, issued_b = await hub.control.create_tenant("other", now=time.time())
    a = await Client.connect(hub_url, api_key=key_a)
    b = await Client.connect(hub_url, api_key=issued_b.secret)
    try:
        ta = await a.create_table("Secret plans", [("Plan", "text")], table_id="shared-id")
        await ta.insert({"Plan": "tenant A only"})
        assert await b.list_tables() == []
        with pytest.raises(ServerError) as info:
            await b.query("shared-id")
        assert info.value.code == "unknown_table"
        with pytest.raises(ServerError):
            await b.table("Secret plans")
        with pytest.raises(ServerError) as info:
            await b.apply("shared-id", [UpdateCells(row="any", values={"Plan": "x"})])
        assert info.value.code == "unknown_table"
        # B may use the same table id for its own, unrelated table.
        tb = await b.create_table("Mine", [("Plan", "text")], table_id="shared-id")
        await tb.insert({"Plan": "tenant B only"})
        assert [v["Plan"] for v in tb.rows.values()] == ["tenant B only"]
        assert [v["Plan"] for v in ta.rows.values()] == ["tenant A only"]
    finally:
        await a.close()
        await b.close()
