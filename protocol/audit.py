"""Audit messages of the wire: an agent's tool-call record, and the audit log export.

Client -> server:

- ``tool_call``: an agent records that it invoked a tool. The server stores the tool name and
  a SHA-256 digest of the arguments in the tenant's audit log, never the arguments: send
  ``args_digest`` (64 lowercase hex digits, SHA-256 of your canonical encoding) or ``args``
  (any JSON value; the server digests its canonical JSON and drops it). Answered by ``ok``.
  An agent gateway (``hypertab mcp``) sends it *before* the tool's effect with a ``call``
  id and what the tool needs (``scopes``, ``tables``): the server checks those against the
  credential and records the call as ``allowed`` or ``refused``; a refused call is answered
  by ``forbidden`` (after its entry is written) and the gateway does not run it.
- ``tool_result``: the outcome of an allowed ``call`` (``ok``, or ``error`` with the error
  ``code``), recorded as a second entry of the same call. Answered by ``ok``.
- ``audit_export``: read the tenant's audit log (``audit:read`` scope, Pro plan and above),
  one page per request. Answered by ``audit_chunk``; while its ``next`` is set, ask again
  with ``after=next`` for the following page. The export is recorded (``export``) once,
  on the first page (``after`` absent).

Server -> client: ``audit_chunk`` with ``data``, the page's text in the requested format
(CSV pages after the first carry no header line).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from protocol.ids import RequestId

MAX_TOOL_NAME_CHARS = 200
"""Longest tool name a ``tool_call`` may carry."""

MAX_EXPORT_PAGE = 5000
"""Most audit entries one ``audit_chunk`` carries."""

Sha256Hex = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
"""A SHA-256 digest as 64 lowercase hex digits."""

ToolName = Annotated[str, Meta(pattern=r"^[^\x00-\x1f\x7f]{1,200}$")]
"""A tool's name: 1-200 printable characters."""

ExportFormat = Literal["jsonl", "csv"]
"""The audit export formats."""


MAX_OPEN_TOOL_CALLS = 64
"""Most allowed ``call``s one connection may have awaiting their ``tool_result``."""

CallId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
"""A tool call's id, chosen by the agent gateway."""

ToolOutcome = Literal["ok", "error"]
"""How an allowed tool call ended."""


class ToolCall(Struct, tag="tool_call", omit_defaults=True):
    """Record one tool invocation by an agent; exactly one of ``args_digest`` or ``args``.

    With ``call``: recorded before the tool's effect, checked against ``scopes`` (scope
    names the tool needs) and ``tables`` (table ids, or names as the agent gave them, the
    tool touches); answered by ``ok`` (allowed: run it, then send ``tool_result``) or
    ``forbidden`` (refused and recorded as such).
    """

    id: RequestId
    tool: ToolName
    args_digest: Sha256Hex | None = None
    args: Any = None
    call: CallId | None = None
    scopes: Annotated[list[Annotated[str, Meta(max_length=32)]], Meta(max_length=16)] = []
    tables: Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=128)]], Meta(max_length=16)
    ] = []


class ToolResult(Struct, tag="tool_result", omit_defaults=True):
    """The outcome of an allowed tool ``call`` of this connection; ``code`` with ``error``."""

    id: RequestId
    call: CallId
    outcome: ToolOutcome
    code: Annotated[str, Meta(pattern=r"^[a-z_]{1,64}$")] | None = None


class AuditExport(Struct, tag="audit_export", omit_defaults=True):
    """Ask for one page of the tenant's audit log, entries with ``id > after`` and
    ``ts >= since``, in id order."""

    id: RequestId
    format: ExportFormat = "jsonl"
    since: float | None = None
    after: Annotated[int, Meta(ge=0)] | None = None
    limit: Annotated[int, Meta(ge=1, le=MAX_EXPORT_PAGE)] = 1000


class AuditChunk(Struct, tag="audit_chunk", omit_defaults=True):
    """One page of an audit export. ``next``: pass as ``after`` to get the next page;
    absent on the last page. ``count``: entries in this page."""

    id: int
    format: str
    data: str
    count: int
    next: int | None = None
