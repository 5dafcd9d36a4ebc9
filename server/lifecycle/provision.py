"""Provisioning (signup): a tenant's database, schema, data key, first admin key and audit
entry, all or nothing.

How it works
------------
1. A tenant id is drawn here, so the database file can be made before anything refers to
   it: ``tenants/<id>.db`` is created exclusively (an existing file is never reused), gets
   the store schema (:mod:`server.store.schema`), the secrets table and the tenant audit
   log, and optionally a ``populate`` step (import fills it with an archive's tables).
2. One control transaction (``ControlPlane.create_tenant`` with ``tenant_id`` and an
   ``extra`` hook) inserts the tenant row and its admin key, writes the signup audit
   entries (the control plane does that itself), and creates the tenant's data key wrapped
   by the current master key (:meth:`DataKeyStore.create_tenant_key`, ``commit=False``).
3. If anything fails, the transaction has rolled back (no control rows) and the database
   files are removed, so a failed signup leaves nothing behind.

Without a keyring (no master keys configured) the tenant is created without a data key;
:func:`ensure_data_key` creates it when secrets are first used with a keyring.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import aiosqlite

from server.audit import log as audit_log
from server.auth.apikeys import IssuedKey
from server.auth.ids import new_tenant_id
from server.auth.principal import Plan, TenantId
from server.control.plane import ControlPlane
from server.control.tenants import TenantRecord, clean_name
from server.secrets.datakeys import DataKeyStore
from server.secrets.envelope import DataKey
from server.secrets.keyring import Keyring
from server.secrets.store import SecretStore
from server.store.asyncconn import AsyncConnection
from server.store.schema import Durability, configure, tenant_path

Populate = Callable[[sqlite3.Connection], None]
"""Fills a freshly created tenant database (runs in a worker thread, inside a transaction)."""

DB_SUFFIXES = ("", "-wal", "-shm", "-journal")
"""A SQLite database is these files: the database, its WAL, shared memory and journal."""


class ProvisioningError(Exception):
    """The tenant could not be created; nothing of it remains."""


def database_files(path: Path) -> list[Path]:
    """The database file and its companions (whether or not they exist)."""
    return [path.with_name(path.name + suffix) for suffix in DB_SUFFIXES]


def remove_database_files(path: Path) -> list[Path]:
    """Delete a database and its -wal/-shm/-journal files; returns those that existed."""
    removed = []
    for file in database_files(path):
        with contextlib.suppress(FileNotFoundError):
            file.unlink()
            removed.append(file)
    return removed


def _create_database(path: Path, durability: Durability, populate: Populate | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: a tenant database is never adopted, even if a stale file had this name.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        configure(conn, durability, True)
        if populate is not None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                populate(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
    finally:
        conn.close()


def _existing_uri(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(2, "tenant database does not exist", str(path))
    return f"{path.resolve().as_uri()}?mode=rw"


async def open_tenant_db(path: Path) -> aiosqlite.Connection:
    """An autocommit connection to an existing tenant database (never creates one)."""
    conn = await aiosqlite.connect(_existing_uri(path), uri=True, isolation_level=None)
    try:
        await conn.execute("PRAGMA busy_timeout=5000")
        await conn.execute("PRAGMA journal_mode=WAL")
    except BaseException:
        await conn.close()
        raise
    return conn


async def ensure_feature_schema(conn: AsyncConnection) -> None:
    """The secrets table and the tenant audit log (idempotent)."""
    await SecretStore(conn, TenantId(""), NoKeys()).ensure_schema()
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await audit_log.ensure_schema(conn, commit=False)
    except BaseException:
        await conn.rollback()
        raise
    await conn.commit()


class NoKeys:
    """A data key source for schema work that never needs a key."""

    async def current_key(self, tenant: TenantId) -> DataKey:
        raise ProvisioningError("no data key needed here")  # pragma: no cover

    async def get_key(self, tenant: TenantId, version: int) -> DataKey:
        raise ProvisioningError("no data key needed here")  # pragma: no cover


async def create_tenant_database(
    data_dir: Path,
    tenant: TenantId,
    *,
    durability: Durability = Durability.PROCESS,
    populate: Populate | None = None,
) -> Path:
    """Create and initialise ``tenant``'s database file; returns its path."""
    path = tenant_path(data_dir, tenant)
    await asyncio.to_thread(_create_database, path, durability, populate)
    conn = await open_tenant_db(path)
    try:
        await ensure_feature_schema(conn)
    finally:
        await conn.close()
    return path


async def provision_tenant(
    control: ControlPlane,
    data_dir: Path,
    name: str,
    plan: Plan = Plan.FREE,
    *,
    keyring: Keyring | None,
    now: float,
    actor: str = "system",
    region: str = "",
    durability: Durability = Durability.PROCESS,
    populate: Populate | None = None,
) -> tuple[TenantRecord, IssuedKey]:
    """Create a tenant end to end (see the module docstring); all or nothing."""
    name = clean_name(name, what="tenant name")  # fail before touching the disk
    tenant_id = new_tenant_id()
    path = tenant_path(data_dir, tenant_id)

    async def add_data_key(conn: aiosqlite.Connection, record: TenantRecord) -> None:
        if keyring is not None:
            await DataKeyStore(conn, keyring).create_tenant_key(record.id, now=now, commit=False)

    try:
        await create_tenant_database(data_dir, tenant_id, durability=durability, populate=populate)
        return await control.create_tenant(
            name,
            plan,
            now=now,
            region=region,
            actor=actor,
            tenant_id=tenant_id,
            extra=add_data_key,
        )
    except BaseException:
        remove_database_files(path)
        raise


async def ensure_data_key(
    control_conn: aiosqlite.Connection, keyring: Keyring, tenant: TenantId, *, now: float
) -> bool:
    """Give a live tenant created without a keyring its data key; ``True`` if made now.

    A tenant that has (or had, then retired) keys is left alone, and so is a deleted one:
    its keys were shredded on purpose.
    """
    async with control_conn.execute(
        "SELECT 1 FROM tenants WHERE id = ? AND deleted_at IS NULL", (tenant,)
    ) as cursor:
        if await cursor.fetchone() is None:
            return False
    store = DataKeyStore(control_conn, keyring)
    if await store.list_keys(tenant):
        return False
    await store.create_tenant_key(tenant, now=now)
    return True
