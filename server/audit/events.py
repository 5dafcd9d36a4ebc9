"""The audited events of the hub: how each is recorded, and where (tenant or control log).

Two logs, one shape (``log.py``): each tenant database holds that tenant's events; the
control database holds events with no tenant to put them in (signup, key changes, failed
authentication, tenant deletion). The control plane's own entries (signup, plan, deletion,
keys) are built in ``server/control/audit_entries.py``: this package knows nothing of the
control plane, the stores or the hub, only the connection or the small :class:`ControlLog`
/ :class:`TenantLog` protocols it is handed.

Writing an audited action together with its entry
-------------------------------------------------

The action and its entry must commit in one transaction, so the entry is appended on the
connection the action is written on, before the commit:

- Tenant events (secrets, admin reads, exports, ...)::

      async with store.exclusive() as conn:          # the tenant's writer, paused
          await conn.execute("BEGIN IMMEDIATE")
          ...                                        # the audited write(s)
          await audit_tenant_event(conn, entry)      # rolls back and raises on failure
          await conn.commit()

- Control events: inside ``async with plane.transaction() as conn:`` call
  ``await audit_control_event(conn, entry)``.

If the append fails, it has already rolled the whole transaction back and raised
:class:`~server.audit.log.AuditWriteError`: the action is not applied. Events that are not
tied to another write (a tool call, a rate-limit summary) use :func:`record_tenant_event` /
:func:`record_control_event`, which open and commit their own transaction.

The entry builders below are pure; details never carry a credential, an argument value or a
message body (``log.append`` also redacts them, as a second guard).
"""

from __future__ import annotations

import hashlib
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from server.audit.actions import Action
from server.audit.chain import AuditEntry, ChainedEntry
from server.audit.log import append
from server.sqlconn import AsyncConnection

if TYPE_CHECKING:
    from server.auth.principal import Principal
    from server.ratelimit.aggregate import DenialSummary

SYSTEM = "system"
"""The actor of actions the server takes by itself (retention, housekeeping)."""

ANONYMOUS = "anonymous"
"""The actor of an unauthenticated request (a refused handshake)."""


def actor_of(principal: Principal) -> str:
    """The audit actor naming a principal: ``<tenant>/<subject>``."""
    return f"{principal.tenant}/{principal.subject}"


def args_digest(args: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of a tool call's arguments (keys sorted)."""
    return hashlib.sha256(msgspec.json.encode(args, order="sorted")).hexdigest()


# --- writing -------------------------------------------------------------------------------


class ControlLog(Protocol):
    """What control events are written through: a write transaction on control.db
    (``server.control.plane.ControlPlane``). The audit package knows no more of it."""

    def transaction(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A ``BEGIN IMMEDIATE`` transaction that commits on success."""
        ...


class TenantLog(Protocol):
    """What tenant events are written through: the tenant's writer connection, paused
    (``server.store.tenant.TenantStore``)."""

    def exclusive(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """The writer's connection, with no other write running on it."""
        ...


async def audit_tenant_event(conn: AsyncConnection, entry: AuditEntry) -> ChainedEntry:
    """Append ``entry`` to a tenant's log inside the caller's open transaction.

    ``conn`` is the writer from ``TenantStore.exclusive()``; the caller commits. On failure
    the caller's whole transaction is rolled back and ``AuditWriteError`` raised.
    """
    return await append(conn, entry, commit=False)


async def audit_control_event(conn: AsyncConnection, entry: AuditEntry) -> ChainedEntry:
    """Append ``entry`` to the control log inside ``ControlPlane.transaction()``."""
    return await append(conn, entry, commit=False)


async def record_tenant_event(store: TenantLog, entry: AuditEntry) -> ChainedEntry:
    """Append ``entry`` to a tenant's log in a transaction of its own."""
    async with store.exclusive() as conn:
        return await append(conn, entry, commit=True)


async def record_control_event(control: ControlLog, entry: AuditEntry) -> ChainedEntry:
    """Append ``entry`` to the control log in a transaction of its own."""
    async with control.transaction() as conn:
        return await append(conn, entry, commit=False)


# --- entries (pure) ------------------------------------------------------------------------


def auth_failed(reason: str, ip: str | None, now: float, key_id: str | None) -> AuditEntry:
    """A handshake credential was refused: the reason category, never the credential.

    ``key_id`` is the key id read from a well-formed API key (not secret), else ``None``.
    """
    return AuditEntry(
        now, ANONYMOUS, Action.AUTH_FAILED, target=key_id or "", ip=ip, details={"reason": reason}
    )


def tool_call(
    principal: Principal,
    tool: str,
    digest: str,
    ip: str | None,
    now: float,
    *,
    call: str | None = None,
    refused: str | None = None,
) -> AuditEntry:
    """An agent recorded a tool invocation: the tool and the digest of its arguments.

    With ``call`` (a gateway's call, recorded before its effect) the entry also says
    whether the credential allowed it (``outcome``: ``allowed`` or ``refused`` + ``reason``).
    """
    details: dict[str, Any] = {"args_sha256": digest, "credential_id": principal.credential_id}
    if call is not None:
        details["call"] = call
        details["outcome"] = "refused" if refused is not None else "allowed"
        if refused is not None:
            details["reason"] = refused
    return AuditEntry(
        now, actor_of(principal), Action.TOOL_CALL, target=tool, ip=ip, details=details
    )


def tool_result(
    principal: Principal,
    tool: str,
    call: str,
    outcome: str,
    code: str | None,
    ip: str | None,
    now: float,
) -> AuditEntry:
    """How an allowed tool call ended (``ok``, or ``error`` with the wire error ``code``)."""
    details: dict[str, Any] = {
        "call": call,
        "outcome": outcome,
        "credential_id": principal.credential_id,
    }
    if code is not None:
        details["code"] = code
    return AuditEntry(
        now, actor_of(principal), Action.TOOL_RESULT, target=tool, ip=ip, details=details
    )


def export(
    actor: str, fmt: str, since: float | None, via: str, ip: str | None, now: float
) -> AuditEntry:
    """Someone exported the audit log (``via``: ``websocket`` or ``cli``)."""
    return AuditEntry(
        now,
        actor,
        Action.EXPORT,
        target="audit_log",
        ip=ip,
        details={"format": fmt, "since": since, "via": via},
    )


def admin_read(
    actor: str, what: str, now: float, details: dict[str, Any] | None = None
) -> AuditEntry:
    """An operator read a tenant's data outside the tenant's own credentials."""
    return AuditEntry(now, actor, Action.ADMIN_READ, target=what, details=details or {})


def rate_limit_exceeded(summary: DenialSummary) -> AuditEntry:
    """One window of rate-limit denials of one principal (aggregated, not per message)."""
    return AuditEntry(
        summary.window_end,
        summary.actor,
        Action.RATE_LIMIT_EXCEEDED,
        target=summary.actor,
        details=summary.details(),
    )
