"""A real MCP client session (the ``mcp`` package's client, stdio) with ``hypertab mcp``
spawned against a real hub: tools, live edits seen by an SDK subscriber, one audit entry
per call with its outcome."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from typing import Any

from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp_helpers import audit, call, calls, mcp_session

from client_sdk import Client

EXPECTED_TOOLS = {
    "list_tables",
    "describe_table",
    "query_rows",
    "insert_rows",
    "update_rows",
    "delete_rows",
    "create_table",
    "add_column",
    "rename_column",
    "set_formula",
    "read_changes",
}


async def test_an_agent_lists_queries_inserts_and_updates_live_and_audited(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, admin_key = tenant
    async with await Client.connect(hub_url, api_key=admin_key) as admin:
        people = await admin.create_table("People", [("Name", "text"), ("Age", "number")])
        ada = await people.insert({"Name": "Ada", "Age": 36})
        agent = await admin.keys.create("agent", ["tables:read", "tables:write"])
        feed = people.row_changes()
        async with mcp_session(hub_url, key=agent.secret) as session:
            listed = await session.list_tools()
            assert {t.name for t in listed.tools} == EXPECTED_TOOLS
            insert_schema = next(t for t in listed.tools if t.name == "insert_rows").input_schema
            assert insert_schema["required"] == ["table", "rows"]
            assert insert_schema["additionalProperties"] is False

            tables = await call(session, "list_tables")
            assert [t["name"] for t in tables["tables"]] == ["People"]
            described = await call(session, "describe_table", table="People")
            assert described["row_count"] == 1
            assert [c["name"] for c in described["columns"]] == ["Name", "Age"]

            page = await call(session, "query_rows", table="People")
            assert page["rows"] == [{"_id": ada, "Name": "Ada", "Age": 36}]

            inserted = await call(
                session, "insert_rows", table="People", rows=[{"Name": "Alan", "Age": 41}]
            )
            (alan,) = inserted["ids"]
            event = await asyncio.wait_for(anext(feed), 5)  # the SDK subscriber sees it live
            assert (event.kind, event.row, dict(event.values)) == (
                "inserted",
                alan,
                {"Name": "Alan", "Age": 41},
            )
            assert event.by == f"key:{agent.info.id}"

            updated = await call(
                session, "update_rows", table="People", ids=[ada], values={"Age": 37}
            )
            assert updated["updated"] == 1
            event = await asyncio.wait_for(anext(feed), 5)
            assert (event.kind, event.row, event.changed) == ("updated", ada, ("Age",))
            assert people.record(ada)["Age"] == 37  # type: ignore[index]

            wrong = await call(
                session, "update_rows", table="People", ids=[ada], values={"Nope": 1}
            )
            assert wrong["error"]["code"] == "unknown_column"
            bad = await call(session, "insert_rows", table="People", rows=[])
            assert bad["error"]["code"] == "bad_arguments"
            typed = await call(
                session, "insert_rows", table="People", rows=[{"Age": "not a number"}]
            )
            assert typed["error"]["code"] == "type_mismatch"  # the hub's own code, passed on

            changes = await call(
                session, "read_changes", table="People", since=described["version"]
            )
            assert [c["ops"][0]["op"] for c in changes["changes"]] == ["insert", "update"]
            assert changes["changes"][0]["ops"][0]["rows"][0]["Name"] == "Alan"
        await feed.aclose()

    assert calls(hub, record.id) == [
        ("list_tables", "ok", None),
        ("describe_table", "ok", None),
        ("query_rows", "ok", None),
        ("insert_rows", "ok", None),
        ("update_rows", "ok", None),
        ("update_rows", "error", "unknown_column"),
        ("insert_rows", "error", "bad_arguments"),
        ("insert_rows", "error", "type_mismatch"),
        ("read_changes", "ok", None),
    ]
    entries = audit(hub, record.id, "tool.call")
    assert {e["actor"] for e in entries} == {f"{record.id}/key:{agent.info.id}"}
    assert all(len(e["details"]["args_sha256"]) == 64 for e in entries)
    assert all(e["details"]["credential_id"] == agent.info.id for e in entries)


async def test_the_streamable_http_transport_serves_the_same_tools(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    _, key = tenant
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"PATH": os.environ.get("PATH", ""), "HYPERTAB_API_KEY": key, "HYPERTAB_URL": hub_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "client_sdk.mcp",
        "--transport",
        "http",
        "--port",
        str(port),
        env=env,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        async with (
            streamable_http_client(f"http://127.0.0.1:{port}/mcp") as streams,
            ClientSession(streams[0], streams[1]) as session,
        ):
            await session.initialize()
            assert {t.name for t in (await session.list_tools()).tools} == EXPECTED_TOOLS
            made = await call(session, "create_table", name="Http", columns=[{"name": "A"}])
            assert made["name"] == "Http"
    finally:
        proc.terminate()
        await proc.wait()
