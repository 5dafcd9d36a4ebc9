"""A tenant's life in ``control.db``: signup, plan changes, deletion, incident containment.

Signup creates the tenant and its first admin key (every scope) in one transaction with
their audit entries. Deletion and containment take every credential of the tenant away in
one :meth:`Revocations.revoking` transaction, whose ``TENANT`` event closes all its sockets
on every process. The tenant's database, secrets and data keys are the lifecycle
workflows' business (``server.lifecycle``): they pass a :data:`TenantHook` that runs inside
the same transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable

import aiosqlite

from server.audit.chain import AuditEntry
from server.audit.events import SYSTEM, audit_control_event
from server.auth.apikeys import IssuedKey, KeyRecord
from server.auth.ids import new_tenant_id
from server.auth.principal import ALL_SCOPES, Plan, TenantId
from server.auth.revocation import RevocationEvent, RevocationKind
from server.control import audit_entries
from server.control.db import ControlDb
from server.control.errors import UnknownTenant
from server.control.keys import Keys, revoke_all
from server.control.revocations import Revocations
from server.control.tenants import TenantRecord, clean_name, read_tenant

TenantHook = Callable[[aiosqlite.Connection, TenantRecord], Awaitable[None]]
"""Awaited inside a tenant create/delete transaction on the control connection."""


class Tenancy:
    """Creates, re-plans, deletes and contains tenants (reads: :mod:`.tenants`)."""

    def __init__(self, db: ControlDb, keys: Keys, revocations: Revocations) -> None:
        self._db = db
        self._keys = keys
        self._revocations = revocations

    async def _audit(self, entry: AuditEntry) -> None:
        await audit_control_event(self._db.conn, entry)

    async def create(
        self,
        name: str,
        plan: Plan = Plan.FREE,
        *,
        now: float,
        region: str = "",
        actor: str = SYSTEM,
        tenant_id: TenantId | None = None,
        extra: TenantHook | None = None,
    ) -> tuple[TenantRecord, IssuedKey]:
        """Create a tenant and its first admin key (every scope), in one transaction
        with their audit entries (``actor``: who signed up, for the audit log).

        ``tenant_id`` (server-made) and ``extra`` (awaited inside the transaction with the
        connection and the new tenant) let ``server.lifecycle.provision`` add the tenant's
        database and data key to the same all-or-nothing signup.
        """
        name = clean_name(name, what="tenant name")
        plan = Plan(plan)
        if region:
            region = clean_name(region, what="region", max_length=32)
        for _ in range(1 if tenant_id is not None else 3):
            tenant = TenantRecord(
                id=tenant_id or new_tenant_id(), name=name, plan=plan, created_at=now, region=region
            )
            try:
                async with self._db.transaction() as conn:
                    await conn.execute(
                        "INSERT INTO tenants (id, name, plan, region, created_at, deleted_at)"
                        " VALUES (?, ?, ?, ?, ?, NULL)",
                        (tenant.id, tenant.name, tenant.plan.value, region, now),
                    )
                    issued = await self._keys.insert(
                        tenant.id,
                        "admin",
                        ALL_SCOPES,
                        tables=None,
                        expires_at=None,
                        created_by="system:create_tenant",
                        now=now,
                    )
                    await self._audit(audit_entries.tenant_created(tenant, actor))
                    await self._audit(audit_entries.key_created(issued.record, actor))
                    if extra is not None:
                        await extra(conn, tenant)
            except sqlite3.IntegrityError:
                if tenant_id is not None:
                    raise
                continue  # id collision (astronomically rare): draw again
            return tenant, issued
        raise RuntimeError("could not allocate a unique tenant id")

    async def set_plan(self, tenant: TenantId, plan: Plan) -> TenantRecord:
        """Change a live tenant's plan (takes effect at each principal's next handshake).
        ``hypertab tenant plan`` records it as ``tenant.plan_changed``."""
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE tenants SET plan = ? WHERE id = ? AND deleted_at IS NULL",
                (Plan(plan).value, tenant),
            )
            if cur.rowcount != 1:
                raise UnknownTenant(tenant)
        record = await read_tenant(self._db.conn, tenant)
        assert record is not None
        return record

    async def delete(
        self,
        tenant: TenantId,
        *,
        now: float,
        actor: str = SYSTEM,
        extra: TenantHook | None = None,
    ) -> TenantRecord:
        """Mark the tenant deleted and revoke all its keys; publishes a ``TENANT`` event.

        Idempotent. Removing the tenant's database, secrets and data keys is the job of the
        deletion workflow, which calls this first so no credential of the tenant works
        (``server.lifecycle.delete`` passes ``extra`` to shred the data keys in the same
        transaction).
        """
        conn = self._db.conn
        async with self._revocations.revoking() as events:
            record = await read_tenant(conn, tenant)
            if record is None:
                raise UnknownTenant(tenant)
            deleted_at = record.deleted_at if record.deleted_at is not None else now
            await conn.execute(
                "UPDATE tenants SET deleted_at = ? WHERE id = ?", (deleted_at, tenant)
            )
            await self._audit(audit_entries.tenant_deleted(tenant, actor, now))
            await revoke_all(conn, tenant, now=now)
            if extra is not None:
                await extra(conn, record)
            events.append(
                RevocationEvent(
                    kind=RevocationKind.TENANT, tenant=tenant, reason="tenant_deleted", at=now
                )
            )
        result = await read_tenant(conn, tenant)
        assert result is not None
        return result

    async def contain(
        self, tenant: TenantId, *, now: float, actor: str, reason: str, reissue_by: str | None
    ) -> tuple[list[KeyRecord], IssuedKey | None]:
        """Revoke every live key of a live tenant, refuse its JWTs issued until ``now``
        (``jwt_cutoff``) and close all its connections (a ``TENANT`` event), optionally
        issuing one new admin key (``reissue_by``: its ``created_by``), in one transaction
        with the audit entries. For incident containment (``server.incident``); returns the
        keys revoked and the new key."""
        conn = self._db.conn
        async with self._revocations.revoking() as events:
            record = await read_tenant(conn, tenant)
            if record is None or not record.active:
                raise UnknownTenant(tenant)
            live = [k for k in await self._keys.of_tenant(tenant) if k.revoked_at is None]
            await revoke_all(conn, tenant, now=now)
            for key in live:
                await self._audit(audit_entries.key_revoked(key, actor, now))
            await conn.execute(
                "INSERT INTO jwt_cutoff (tenant_id, not_before) VALUES (?, ?)"
                " ON CONFLICT (tenant_id) DO UPDATE SET not_before = excluded.not_before",
                (tenant, now),
            )
            issued = None
            if reissue_by is not None:
                issued = await self._keys.insert(
                    tenant,
                    "admin",
                    ALL_SCOPES,
                    tables=None,
                    expires_at=None,
                    created_by=clean_name(reissue_by, what="created_by", max_length=200),
                    now=now,
                )
                await self._audit(audit_entries.key_created(issued.record, actor))
            events.append(
                RevocationEvent(kind=RevocationKind.TENANT, tenant=tenant, reason=reason, at=now)
            )
        return live, issued
