"""Helpers for the MCP tests: spawn the real ``hypertab mcp`` on stdio with the official
``mcp`` client, call tools, read the tenant's audit log."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from server.store.schema import tenant_path

HYPERTAB = Path(sys.executable).parent / "hypertab"


@contextlib.asynccontextmanager
async def mcp_session(
    hub_url: str,
    *,
    key: str | None = None,
    key_file: Path | None = None,
    errlog: Path | None = None,
) -> AsyncIterator[ClientSession]:
    """A real MCP client session with ``hypertab mcp`` spawned as a subprocess."""
    env = {"HYPERTAB_URL": hub_url}
    if key is not None:
        env["HYPERTAB_API_KEY"] = key
    if key_file is not None:
        env["HYPERTAB_API_KEY_FILE"] = str(key_file)
    params = StdioServerParameters(
        command=str(HYPERTAB), args=["mcp", "--key-poll", "0.05"], env=env
    )
    with open(errlog or os.devnull, "w") as err:  # noqa: ASYNC230 (the child's stderr)
        async with (
            stdio_client(params, errlog=err) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


async def call(session: ClientSession, tool: str, **args: Any) -> dict[str, Any]:
    """Call a tool; its structured result (an ``{"error": ...}`` dict when it failed)."""
    result = await session.call_tool(tool, args)
    data = result.structured_content
    if data is None:
        data = json.loads(result.content[0].text)  # type: ignore[union-attr]
    assert isinstance(data, dict)
    assert result.is_error == ("error" in data)
    return data


def audit(hub: Any, tenant: str, *actions: str) -> list[dict[str, Any]]:
    """The tenant's audit entries of these actions, in order, details parsed."""
    with sqlite3.connect(tenant_path(hub.config.data_dir, tenant)) as conn:
        conn.row_factory = sqlite3.Row
        found = conn.execute("SELECT * FROM _ht_audit_log ORDER BY id").fetchall()
    entries = [{**dict(r), "details": json.loads(r["details"])} for r in found]
    return [e for e in entries if e["action"] in actions]


def calls(hub: Any, tenant: str) -> list[tuple[str, str, str | None]]:
    """One line per tool call: (tool, outcome, error code), outcome from its result entry
    (or ``refused`` from the call entry)."""
    entries = audit(hub, tenant, "tool.call", "tool.result")
    results = {e["details"]["call"]: e for e in entries if e["action"] == "tool.result"}
    out: list[tuple[str, str, str | None]] = []
    for entry in entries:
        if entry["action"] != "tool.call":
            continue
        details = entry["details"]
        if details["outcome"] == "refused":
            out.append((entry["target"], "refused", None))
            continue
        result = results[details["call"]]
        assert result["id"] > entry["id"]  # the call was on record before its outcome
        out.append((entry["target"], result["details"]["outcome"], result["details"].get("code")))
    return out
