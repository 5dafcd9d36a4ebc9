"""The audit messages of the hub: ``tool_call`` (record an agent's tool invocation),
``tool_result`` (its outcome) and ``audit_export`` (read the tenant's log, page by page).
Wire format: ``protocol/audit.py``.

- ``tool_call``: the tool name and a SHA-256 digest of the arguments go into the tenant's
  log, with the principal as actor and the peer address; the arguments themselves are never
  stored (when sent as ``args`` they are digested and dropped). Answered by ``ok`` once the
  entry is committed; an entry that cannot be written gets ``internal``. A gateway's call
  (``call`` set) is first checked against the credential: every scope in ``scopes`` must be
  held and every table in ``tables`` on the allowlist. The entry records ``allowed`` or
  ``refused`` (and why); a refused call is answered by ``forbidden`` once that entry is
  committed, so the refusal is on record before the agent hears of it. An allowed call is
  remembered on the session (at most ``MAX_OPEN_TOOL_CALLS``) until its ``tool_result``.
- ``tool_result``: closes an open call of this session, recording its outcome.
- ``audit_export``: ``audit:read`` scope (checked by ``authorize``) and the Pro plan or above
  (``plan_required`` otherwise). The first page (no ``after``) records an ``export`` entry in
  the same transaction as the read: if that entry cannot be written, nothing is returned.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import TYPE_CHECKING

from protocol.audit import MAX_OPEN_TOOL_CALLS, AuditChunk, AuditExport, ToolCall, ToolResult
from protocol.messages import Ok
from server.audit import events
from server.audit.chain import AuditEntry, AuditError
from server.audit.export import EXPORT_PLANS, csv_header, csv_line, jsonl_line
from server.audit.log import entries
from server.auth.principal import Principal, Scope
from server.hub.httproutes import client_host

if TYPE_CHECKING:
    from server.hub.services import Services
    from server.hub.session import Session

log = logging.getLogger(__name__)

MAX_PAGE_CHARS = 512 * 1024
"""A page stops growing past this many characters (frames stay well under 1 MiB)."""


def register(services: Services) -> None:
    """Install the audit message handlers on the hub."""
    calls = ToolCalls()
    services.handlers[ToolCall] = calls.tool_call
    services.handlers[ToolResult] = calls.tool_result
    services.handlers[AuditExport] = audit_export


def tool_refusal(principal: Principal, scopes: list[str], tables: list[str]) -> str | None:
    """Why ``principal`` may not run a tool needing ``scopes`` on ``tables`` (None: it may).

    Pure. An unknown scope name is a refusal too: a tool cannot need what does not exist.
    """
    for name in scopes:
        try:
            scope = Scope(name)
        except ValueError:
            return f"unknown scope {name[:40]!r}"
        if not principal.can(scope):
            return f"this credential lacks the {scope.value} scope"
    for table in tables:
        if not principal.may_touch(table):
            return "this credential may not touch that table"
    return None


class ToolCalls:
    """The ``tool_call`` / ``tool_result`` handlers and each session's open calls."""

    def __init__(self) -> None:
        self._open: weakref.WeakKeyDictionary[Session, dict[str, str]] = weakref.WeakKeyDictionary()

    async def tool_call(self, session: Session, message: ToolCall) -> None:
        """Record a tool invocation in the tenant's audit log (checked first for a call)."""
        if (message.args_digest is None) == (message.args is None):
            session.error("bad_message", "send exactly one of args_digest or args", message.id)
            return
        refused: str | None = None
        if message.call is not None:
            open_calls = self._open.setdefault(session, {})
            if message.call in open_calls:
                session.error("bad_message", "that call id is already open", message.id)
                return
            if len(open_calls) >= MAX_OPEN_TOOL_CALLS:
                session.error(
                    "bad_message", "too many tool calls awaiting their tool_result", message.id
                )
                return
            refused = tool_refusal(session.principal, message.scopes, message.tables)
        elif message.scopes or message.tables:
            session.error("bad_message", "scopes and tables need a call id", message.id)
            return
        digest = message.args_digest or events.args_digest(message.args)
        entry = events.tool_call(
            session.principal,
            message.tool,
            digest,
            client_host(session.conn),
            time.time(),
            call=message.call,
            refused=refused,
        )
        if not await _record(session, entry, message.id):
            return
        if refused is not None:
            session.error("forbidden", refused, message.id)
            return
        if message.call is not None:
            self._open.setdefault(session, {})[message.call] = message.tool
        session.send(Ok(id=message.id))

    async def tool_result(self, session: Session, message: ToolResult) -> None:
        """Record how an allowed call of this session ended."""
        tool = self._open.get(session, {}).pop(message.call, None)
        if tool is None:
            session.error("bad_message", "no open tool call with that id", message.id)
            return
        code = message.code if message.outcome == "error" else None
        entry = events.tool_result(
            session.principal,
            tool,
            message.call,
            message.outcome,
            code,
            client_host(session.conn),
            time.time(),
        )
        if await _record(session, entry, message.id):
            session.send(Ok(id=message.id))


async def _record(session: Session, entry: AuditEntry, request: int) -> bool:
    """Commit one entry to the tenant's log; False (and ``internal`` sent) if it failed."""
    try:
        async with session.stores.use(session.tenant) as store:
            await events.record_tenant_event(store, entry)
    except AuditError as exc:
        log.error("tool call audit entry not written (%s)", type(exc).__name__)
        session.error("internal", "the audit entry could not be written", request)
        return False
    return True


async def audit_export(session: Session, message: AuditExport) -> None:
    """Answer one page of the tenant's audit log."""
    principal = session.principal
    if principal.plan not in EXPORT_PLANS:
        session.error("plan_required", "audit log export needs the Pro plan or above", message.id)
        return
    lines: list[str] = []
    size = 0
    last_id: int | None = None
    count = 0
    full = False
    try:
        async with session.stores.use(session.tenant) as store, store.exclusive() as conn:
            if message.after is None:
                await conn.execute("BEGIN IMMEDIATE")
                entry = events.export(
                    events.actor_of(principal),
                    message.format,
                    message.since,
                    "websocket",
                    client_host(session.conn),
                    time.time(),
                )
                await events.audit_tenant_event(conn, entry)
                if message.format == "csv":
                    lines.append(csv_header())
            try:
                async for item in entries(
                    conn, message.since, after=message.after, limit=message.limit
                ):
                    line = jsonl_line(item) if message.format == "jsonl" else csv_line(item)
                    lines.append(line)
                    size += len(line)
                    last_id = item.id
                    count += 1
                    if size >= MAX_PAGE_CHARS:
                        full = True
                        break
            except BaseException:
                if conn.in_transaction:
                    await conn.rollback()
                raise
            if conn.in_transaction:
                await conn.commit()
    except AuditError as exc:
        log.error("audit export refused: entry not written (%s)", type(exc).__name__)
        session.error(
            "internal", "the export could not be recorded; nothing was exported", message.id
        )
        return
    more = full or count == message.limit
    await session.send_paced(
        AuditChunk(
            id=message.id,
            format=message.format,
            data="".join(lines),
            count=count,
            next=last_id if more and last_id is not None else None,
        )
    )
