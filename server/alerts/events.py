"""Audit entries that exist to raise an alert (pure builders) and recording them.

Each is written to the control audit log; the outbox trigger turns it into an alert in the
same transaction (:mod:`server.alerts.schema`).
"""

from __future__ import annotations

from typing import Any

from server.audit.actions import Action
from server.audit.chain import AuditEntry
from server.audit.events import SYSTEM, record_control_event
from server.control.plane import ControlPlane


def handshake_failures(
    scope: str, key: str, count: int, window: float, now: float, tenant: str | None = None
) -> AuditEntry:
    """A burst of failed handshakes for one peer address (``scope="ip"``) or tenant."""
    details: dict[str, Any] = {"scope": scope, "failures": count, "window_s": window}
    if tenant is not None:
        details["tenant"] = tenant
    return AuditEntry(
        now,
        SYSTEM,
        Action.HANDSHAKE_FAILURE_BURST,
        target=key,
        ip=key if scope == "ip" else None,
        details=details,
    )


def audit_chain_broken(log_name: str, entry_id: int, actor: str, now: float) -> AuditEntry:
    """``audit verify`` found the chain of ``log_name`` broken at ``entry_id``."""
    tenant = log_name.removeprefix("tenant ") if log_name.startswith("tenant ") else None
    details: dict[str, Any] = {"log": log_name, "broken_at": entry_id}
    if tenant is not None:
        details["tenant"] = tenant
    return AuditEntry(now, actor, Action.AUDIT_CHAIN_BROKEN, target=log_name, details=details)


def abuse_closed(tenant: str, credential_id: str, ip: str | None, now: float) -> AuditEntry:
    """A connection was closed for abusing the rate limits."""
    return AuditEntry(
        now,
        SYSTEM,
        Action.ABUSE_CLOSED,
        target=credential_id,
        ip=ip,
        details={"tenant": tenant, "credential_id": credential_id},
    )


def master_key_rotated(key_id: str, rewrapped: int, actor: str, now: float) -> AuditEntry:
    """A new master key became current (its id, never its material)."""
    return AuditEntry(
        now,
        actor,
        Action.MASTER_KEY_ROTATED,
        target=key_id,
        details={"rewrapped_data_keys": rewrapped},
    )


async def record(control: ControlPlane, entry: AuditEntry) -> None:
    """Write ``entry`` to the control log in a transaction of its own."""
    await record_control_event(control, entry)
