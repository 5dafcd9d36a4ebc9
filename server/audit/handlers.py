"""The audit messages of the hub: ``tool_call`` (record an agent's tool invocation) and
``audit_export`` (read the tenant's log, page by page). Wire format: ``protocol/audit.py``.

- ``tool_call``: the tool name and a SHA-256 digest of the arguments go into the tenant's
  log, with the principal as actor and the peer address; the arguments themselves are never
  stored (when sent as ``args`` they are digested and dropped). Answered by ``ok`` once the
  entry is committed; an entry that cannot be written gets ``internal``.
- ``audit_export``: ``audit:read`` scope (checked by ``authorize``) and the Pro plan or above
  (``plan_required`` otherwise). The first page (no ``after``) records an ``export`` entry in
  the same transaction as the read: if that entry cannot be written, nothing is returned.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from protocol.audit import AuditChunk, AuditExport, ToolCall
from protocol.messages import Ok
from server.audit import events
from server.audit.chain import AuditError
from server.audit.export import csv_header, csv_line, jsonl_line
from server.audit.log import entries
from server.auth.principal import Plan
from server.hub.httproutes import client_host

if TYPE_CHECKING:
    from server.hub.services import Services
    from server.hub.session import Session

log = logging.getLogger(__name__)

MAX_PAGE_CHARS = 512 * 1024
"""A page stops growing past this many characters (frames stay well under 1 MiB)."""

EXPORT_PLANS = frozenset({Plan.PRO, Plan.TEAM, Plan.ENTERPRISE})
"""Plans that may export their audit log."""


def register(services: Services) -> None:
    """Install the audit message handlers on the hub."""
    services.handlers[ToolCall] = tool_call
    services.handlers[AuditExport] = audit_export


async def tool_call(session: Session, message: ToolCall) -> None:
    """Record a tool invocation in the tenant's audit log."""
    if (message.args_digest is None) == (message.args is None):
        session.error("bad_message", "send exactly one of args_digest or args", message.id)
        return
    digest = message.args_digest or events.args_digest(message.args)
    entry = events.tool_call(
        session.principal, message.tool, digest, client_host(session.conn), time.time()
    )
    try:
        async with session.stores.use(session.tenant) as store:
            await events.record_tenant_event(store, entry)
    except AuditError as exc:
        log.error("tool call audit entry not written (%s)", type(exc).__name__)
        session.error("internal", "the audit entry could not be written", message.id)
        return
    session.send(Ok(id=message.id))


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
