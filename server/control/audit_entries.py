"""What the control plane writes to the control audit log: signup, plan, deletion, keys.

Pure entry builders (``AuditEntry``), appended by the control plane inside the transaction
of the change they record (``server.audit.events.audit_control_event``). Details never
carry a secret: a key is named by its id, name, scopes and tables.
"""

from __future__ import annotations

from server.audit.actions import Action
from server.audit.chain import AuditEntry
from server.auth.apikeys import KeyRecord
from server.auth.principal import Scope
from server.control.tenants import TenantRecord


def tenant_created(record: TenantRecord, actor: str) -> AuditEntry:
    """Signup: a tenant and its first admin key were created."""
    return AuditEntry(
        record.created_at,
        actor,
        Action.TENANT_CREATED,
        target=record.id,
        details={"plan": record.plan.value, "name": record.name, "region": record.region},
    )


def tenant_plan_changed(tenant: str, old: str, new: str, actor: str, now: float) -> AuditEntry:
    """A tenant's plan (rate limits, features) was changed."""
    return AuditEntry(
        now, actor, Action.TENANT_PLAN_CHANGED, target=tenant, details={"from": old, "to": new}
    )


def tenant_deleted(tenant: str, actor: str, now: float) -> AuditEntry:
    """A tenant was deleted (its keys revoked with it)."""
    return AuditEntry(now, actor, Action.TENANT_DELETED, target=tenant)


def key_created(record: KeyRecord, actor: str) -> AuditEntry:
    """An API key was issued (never its secret: its id, name, scopes and tables)."""
    return AuditEntry(
        record.created_at,
        actor,
        Action.KEY_CREATED,
        target=record.id,
        details={
            "tenant": record.tenant,
            "name": record.name,
            "scopes": sorted(s.value for s in record.scopes),
            "tables": sorted(record.tables) if record.tables is not None else None,
            "expires_at": record.expires_at,
            **({"rate": record.rate} if record.rate is not None else {}),
        },
    )


def key_revoked(record: KeyRecord, actor: str, now: float) -> AuditEntry:
    """An API key was revoked."""
    return AuditEntry(
        now,
        actor,
        Action.KEY_REVOKED,
        target=record.id,
        details={"tenant": record.tenant, "already_revoked": record.revoked_at is not None},
    )


def key_rotated(old: KeyRecord, new_id: str, actor: str, now: float) -> AuditEntry:
    """An API key was replaced by a new one (the old one revoked)."""
    return AuditEntry(
        now,
        actor,
        Action.KEY_ROTATED,
        target=old.id,
        details={"tenant": old.tenant, "replaced_by": new_id},
    )


def key_updated(record: KeyRecord, scopes: frozenset[Scope], actor: str, now: float) -> AuditEntry:
    """An API key's scopes were narrowed (before and after; never its secret)."""
    return AuditEntry(
        now,
        actor,
        Action.KEY_UPDATED,
        target=record.id,
        details={
            "tenant": record.tenant,
            "scopes_before": sorted(s.value for s in record.scopes),
            "scopes": sorted(s.value for s in scopes),
        },
    )
