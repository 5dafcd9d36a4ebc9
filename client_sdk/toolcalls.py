"""Recording an agent's tool calls in the tenant's audit log: ``client.tool_calls``.

An agent gateway (``hypertab mcp``) wraps every tool it runs::

    call = await client.tool_calls.begin("insert_rows", args, scopes=["tables:write"],
                                         tables=[table_id])   # ServerError(forbidden) if refused
    try:
        result = ...                                          # the tool's effect
    except ServerError as exc:
        await client.tool_calls.end(call, error=exc.code)
        raise
    await client.tool_calls.end(call)

``begin`` returns once the hub has committed a ``tool.call`` entry (tool, SHA-256 of the
canonical JSON of the arguments, key) *before* anything else happens; when the key lacks a
scope or the table is off its allowlist the entry says ``refused`` and ``begin`` raises
``forbidden``. ``end`` records the outcome as a ``tool.result`` entry. The arguments never
leave this process: only their digest does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from client_sdk.table import new_id
from protocol.audit import ToolCall, ToolResult

if TYPE_CHECKING:
    from client_sdk.client import Client


def args_digest(args: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``args`` (keys sorted), as the hub computes."""
    return hashlib.sha256(msgspec.json.encode(args, order="sorted")).hexdigest()


class ToolCalls:
    """The tool-call audit calls of one client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def begin(
        self,
        tool: str,
        args: Any,
        *,
        scopes: Iterable[str] = (),
        tables: Iterable[str] = (),
    ) -> str:
        """Record a call before its effect; its call id. ``ServerError`` ``forbidden`` when
        the credential may not run it (recorded as refused)."""
        call = new_id()
        digest = args_digest(args)
        scope_list, table_list = sorted(set(scopes)), sorted(set(tables))
        await self._client.request(
            lambda rid: ToolCall(
                id=rid,
                tool=tool,
                args_digest=digest,
                call=call,
                scopes=scope_list,
                tables=table_list,
            )
        )
        return call

    async def end(self, call: str, *, error: str | None = None) -> None:
        """Record how the call ended: ``ok``, or ``error`` with its error code."""
        await self._client.request(
            lambda rid: ToolResult(
                id=rid, call=call, outcome="error" if error else "ok", code=error or None
            )
        )
