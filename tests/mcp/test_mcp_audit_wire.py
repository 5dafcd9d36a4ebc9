"""The tool-call audit on the wire: ``tool_call`` with a call id, ``tool_result``."""

from __future__ import annotations

from typing import Any

import pytest
from mcp_helpers import audit

from client_sdk import Client, ServerError
from client_sdk.toolcalls import args_digest
from protocol.audit import MAX_OPEN_TOOL_CALLS, ToolCall, ToolResult
from server.auth.principal import CredentialKind, Plan, Principal, Scope, TenantId
from server.hub.audit import tool_refusal


def test_tool_refusal_checks_scopes_and_the_table_allowlist() -> None:
    reader = Principal(
        TenantId("t"),
        "key:k",
        CredentialKind.API_KEY,
        "k",
        frozenset({Scope.TABLES_READ}),
        Plan.FREE,
        tables=frozenset({"a"}),
    )
    assert tool_refusal(reader, ["tables:read"], ["a"]) is None
    assert "tables:write" in (tool_refusal(reader, ["tables:write"], ["a"]) or "")
    assert "may not touch" in (tool_refusal(reader, ["tables:read"], ["b"]) or "")
    assert "unknown scope" in (tool_refusal(reader, ["root"], []) or "")


async def test_results_close_only_open_calls_and_record_the_outcome(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        call = await client.tool_calls.begin("search", {"q": "x"}, scopes=["tables:read"])
        await client.tool_calls.end(call, error="unknown_table")
        with pytest.raises(ServerError) as again:
            await client.tool_calls.end(call)  # already closed
        assert again.value.code == "bad_message"
        with pytest.raises(ServerError):
            await client.request(lambda rid: ToolResult(id=rid, call="never", outcome="ok"))
        with pytest.raises(ServerError):  # needs without a call id
            await client.request(
                lambda rid: ToolCall(id=rid, tool="t", args=1, scopes=["tables:read"])
            )
        for n in range(MAX_OPEN_TOOL_CALLS):
            await client.request(lambda rid, n=n: ToolCall(id=rid, tool="t", args=n, call=f"c{n}"))
        with pytest.raises(ServerError) as full:
            await client.request(lambda rid: ToolCall(id=rid, tool="t", args=0, call="more"))
        assert "too many" in full.value.message
    (first, *_), (result,) = (
        audit(hub, record.id, "tool.call"),
        audit(hub, record.id, "tool.result"),
    )
    assert first["target"] == "search"
    assert first["details"]["outcome"] == "allowed"
    assert first["details"]["args_sha256"] == args_digest({"q": "x"})
    assert result["details"] == {
        "call": call,
        "outcome": "error",
        "code": "unknown_table",
        "credential_id": first["details"]["credential_id"],
    }
