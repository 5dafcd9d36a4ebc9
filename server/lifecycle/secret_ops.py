"""Secret operations with their audit entries, on a tenant database connection.

Shared by the hub (on the tenant's paused writer, ``TenantStore.exclusive()``) and the CLI
(on a connection of its own). Each write and its audit entry commit in one transaction;
a reveal commits its ``secret.read`` entry before the value is returned, so no value leaves
without a record. A ciphertext that fails authentication is recorded too (``outcome:
unreadable``): it means someone tampered with the database.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from server.audit import log as audit_log
from server.audit.actions import Action
from server.audit.chain import AuditEntry
from server.auth.principal import TenantId
from server.secrets.errors import DecryptionError, SecretNotFoundError
from server.secrets.store import DataKeySource, SecretInfo, SecretKind, SecretStore
from server.store.asyncconn import AsyncConnection


@contextlib.asynccontextmanager
async def _transaction(conn: AsyncConnection) -> AsyncIterator[None]:
    await conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            await conn.rollback()
        raise
    await conn.commit()


async def _audit(conn: AsyncConnection, entry: AuditEntry) -> None:
    await audit_log.append(conn, entry, commit=False)


async def set_secret(
    conn: AsyncConnection,
    tenant: TenantId,
    keys: DataKeySource,
    name: str,
    kind: SecretKind | str,
    value: str,
    *,
    now: float,
    actor: str,
    ip: str | None = None,
) -> SecretInfo:
    """Create or replace a secret and audit it (``secret.written``)."""
    store = SecretStore(conn, tenant, keys)
    async with _transaction(conn):
        info = await store.set(name, kind, value, now=now, commit=False)
        await _audit(
            conn,
            AuditEntry(
                now,
                actor,
                Action.SECRET_WRITTEN,
                target=info.name,
                ip=ip,
                details={"op": "set", "kind": info.kind.value, "key_version": info.key_version},
            ),
        )
    await store.scrub_files()  # an overwritten ciphertext leaves no page image in the WAL
    return info


async def list_secrets(
    conn: AsyncConnection, tenant: TenantId, keys: DataKeySource
) -> list[SecretInfo]:
    """Every secret with its masked value (no value leaves; not audited)."""
    return await SecretStore(conn, tenant, keys).list()


async def reveal_secret(
    conn: AsyncConnection,
    tenant: TenantId,
    keys: DataKeySource,
    name: str,
    *,
    now: float,
    actor: str,
    ip: str | None = None,
) -> tuple[SecretKind, str]:
    """The kind and value of ``name``, after its ``secret.read`` entry has committed."""
    store = SecretStore(conn, tenant, keys)
    try:
        async with _transaction(conn):
            value = await store.reveal(name)
            async with conn.execute("SELECT kind FROM _ht_secrets WHERE name = ?", (name,)) as cur:
                row = await cur.fetchone()
            kind = SecretKind(str(row[0])) if row is not None else SecretKind.ENV_VAR
            await _audit(
                conn,
                AuditEntry(now, actor, Action.SECRET_READ, target=name, ip=ip,
                           details={"outcome": "revealed"}),
            )  # fmt: skip
    except DecryptionError:
        async with _transaction(conn):
            await _audit(
                conn,
                AuditEntry(now, actor, Action.SECRET_READ, target=name, ip=ip,
                           details={"outcome": "unreadable"}),
            )  # fmt: skip
        raise
    return kind, value


async def delete_secret(
    conn: AsyncConnection,
    tenant: TenantId,
    keys: DataKeySource,
    name: str,
    *,
    now: float,
    actor: str,
    ip: str | None = None,
) -> None:
    """Delete ``name`` (its ciphertext zeroed on disk) and audit it; raises
    :class:`SecretNotFoundError` when there is no such secret."""
    store = SecretStore(conn, tenant, keys)
    async with _transaction(conn):
        if not await store.delete(name, commit=False):
            raise SecretNotFoundError(f"no secret named {name!r}")
        await _audit(
            conn,
            AuditEntry(now, actor, Action.SECRET_WRITTEN, target=name, ip=ip,
                       details={"op": "delete"}),
        )  # fmt: skip
    await store.scrub_files()
