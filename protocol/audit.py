"""Audit messages of the wire: an agent's tool-call record, and the audit log export.

Client -> server:

- ``tool_call``: an agent records that it invoked a tool. The server stores the tool name and
  a SHA-256 digest of the arguments in the tenant's audit log, never the arguments: send
  ``args_digest`` (64 lowercase hex digits, SHA-256 of your canonical encoding) or ``args``
  (any JSON value; the server digests its canonical JSON and drops it). Answered by ``ok``.
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


class ToolCall(Struct, tag="tool_call", omit_defaults=True):
    """Record one tool invocation by an agent; exactly one of ``args_digest`` or ``args``."""

    id: RequestId
    tool: ToolName
    args_digest: Sha256Hex | None = None
    args: Any = None


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
