"""What an agent's key does not allow, no tool does either, and every refusal is audited."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError
from mcp_helpers import audit, call, calls, mcp_session

from client_sdk import Client

WRITES: list[tuple[str, dict[str, Any]]] = [
    ("insert_rows", {"table": "People", "rows": [{"Name": "Eve"}]}),
    (
        "update_rows",
        {
            "table": "People",
            "where": {"op": "eq", "column": "Name", "value": "Ada"},
            "values": {"Name": "Eve"},
        },
    ),
    ("delete_rows", {"table": "People", "ids": ["x"]}),
    ("create_table", {"name": "Other", "columns": [{"name": "A"}]}),
    ("add_column", {"table": "People", "name": "Note"}),
    ("rename_column", {"table": "People", "column": "Name", "new_name": "N"}),
    ("set_formula", {"table": "People", "column": "Name", "formula": "1"}),
]


async def test_a_read_only_key_cannot_write_through_any_tool(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, admin_key = tenant
    async with await Client.connect(hub_url, api_key=admin_key) as admin:
        people = await admin.create_table("People", [("Name", "text")])
        await people.insert({"Name": "Ada"})
        reader = await admin.keys.create("reader", ["tables:read"])
        async with mcp_session(hub_url, key=reader.secret) as session:
            for tool, args in WRITES:
                refused = await call(session, tool, **args)
                assert refused["error"]["code"] == "forbidden", tool
            page = await call(session, "query_rows", table="People")
            assert [r["Name"] for r in page["rows"]] == ["Ada"]
        assert [dict(r) for r in people.records()] == [{"Name": "Ada"}]
        assert [t.name for t in await admin.list_tables()] == ["People"]
    assert calls(hub, record.id) == [(tool, "refused", None) for tool, _ in WRITES] + [
        ("query_rows", "ok", None)
    ]
    refusals = audit(hub, record.id, "tool.call")[:-1]
    assert all(":write scope" in e["details"]["reason"] for e in refusals)


async def test_a_table_limited_key_cannot_see_other_tables(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, admin_key = tenant
    async with await Client.connect(hub_url, api_key=admin_key) as admin:
        mine = await admin.create_table("Mine", [("A", "text")])
        other = await admin.create_table("Secret", [("B", "text")])
        await other.insert({"B": "hidden"})
        limited = await admin.keys.create(
            "limited", ["tables:read", "tables:write"], tables=[mine.id]
        )
        async with mcp_session(hub_url, key=limited.secret) as session:
            listed = await call(session, "list_tables")
            assert [t["name"] for t in listed["tables"]] == ["Mine"]
            resources = await session.list_resources()
            assert [r.name for r in resources.resources] == ["Mine"]
            schema = await session.read_resource(str(resources.resources[0].uri))
            assert json.loads(schema.contents[0].text)["name"] == "Mine"  # type: ignore[union-attr]
            with pytest.raises(MCPError):
                await session.read_resource(f"hypertab://tables/{other.id}")
            for ref in ("Secret", other.id):
                for tool, args in [
                    ("describe_table", {}),
                    ("query_rows", {}),
                    ("read_changes", {"since": 0}),
                    ("insert_rows", {"rows": [{"B": "x"}]}),
                ]:
                    refused = await call(session, tool, table=ref, **args)
                    assert refused["error"]["code"] == "forbidden", (tool, ref)
            assert (await call(session, "describe_table", table="Mine"))["name"] == "Mine"
        assert len(other.rows) == 1
    outcomes = calls(hub, record.id)
    assert outcomes[:3] == [
        ("list_tables", "ok", None),
        ("read_resource", "ok", None),
        ("read_resource", "refused", None),
    ]
    assert outcomes[3:-1] == [
        (t, "refused", None)
        for t in ["describe_table", "query_rows", "read_changes", "insert_rows"] * 2
    ]
    assert outcomes[-1] == ("describe_table", "ok", None)
