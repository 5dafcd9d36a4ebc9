"""Tenant deletion: revoke, close, crypto-shred, delete files, keep the security audit
trail for the retention window, and sign a deletion certificate.

How it works
------------
1. Collect what the certificate will list: each secret's ciphertext size and SHA-256
   (``SecretStore.inventory``), and the tenant's audit entries still inside the retention
   window, which are copied to ``<data_dir>/audit-retained/<tenant>.jsonl`` (0600).
2. The tenant's data keys are removed from the tenant key store that backups are
   restored with (``server.backup.keystore``), so no backup of it can be decrypted.
   One control transaction (``ControlPlane.delete_tenant`` with an ``extra`` hook): the
   tenant is marked deleted, its API keys revoked, the ``tenant.deleted`` audit entry
   written, and every wrapped data key deleted (crypto-shredding). The commit publishes a
   ``TENANT`` revocation: the hub closes the tenant's sockets (4003) and its store; a CLI in
   another process reaches the hub through the ``control.db`` watcher. From this commit on,
   no copy of the tenant's secrets can be decrypted.
3. The control WAL is checkpointed and truncated so no page image of the wrapped keys
   remains; the tenant's database files (db, -wal, -shm, -journal) are hashed and deleted.
4. A certificate listing the database files, secrets and data keys (sizes and digests of
   the stored bytes, never of a plaintext) is signed with the server's Ed25519 key.

Re-running it on a tenant whose deletion was interrupted finishes the job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from server.audit import log as audit_log
from server.auth.principal import TenantId
from server.backup import keystore as backup_keys
from server.backup.keystore import key_store_path
from server.control.errors import UnknownTenant
from server.control.plane import ControlPlane
from server.control.tenants import TenantRecord
from server.lifecycle.certificate import (
    DeletedItem,
    dumps_certificate,
    file_item,
    issue_certificate,
    load_or_create_signing_key,
)
from server.lifecycle.controldb import open_control_connection, shred_only_keyring
from server.lifecycle.provision import NoKeys, database_files, open_tenant_db
from server.secrets.datakeys import DataKeyRecord, DataKeyStore
from server.secrets.keyring import Keyring
from server.secrets.store import SecretRecord, SecretStore
from server.store.schema import tenant_path

log = logging.getLogger(__name__)

SIGNING_KEY_FILE = "signing.key"
"""The server's Ed25519 signing key in the data directory (created 0600 on first use)."""

RETAINED_AUDIT_DIR = "audit-retained"
CERTIFICATES_DIR = "certificates"
RETENTION_DAYS = audit_log.DEFAULT_RETENTION_DAYS

CloseStore = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DeletionResult:
    """The deleted tenant, its signed certificate and where the certificate was written."""

    tenant: TenantRecord
    certificate: dict[str, Any]
    path: Path


def signing_key_path(data_dir: Path) -> Path:
    """Where the server's certificate signing key lives."""
    return data_dir / SIGNING_KEY_FILE


async def _secret_inventory(conn: aiosqlite.Connection, tenant: TenantId) -> list[SecretRecord]:
    try:
        return await SecretStore(conn, tenant, NoKeys()).inventory()
    except sqlite3.OperationalError:
        return []  # a tenant database from before secrets existed


async def _retain_audit(
    conn: aiosqlite.Connection, out: Path, *, now: float, retention_days: float
) -> int:
    try:
        lines = [
            line
            async for line in audit_log.export_lines(conn, since=now - retention_days * 86_400.0)
        ]
    except sqlite3.OperationalError:
        return 0  # no audit table
    if not lines:
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.writelines(lines)
        handle.flush()
        os.fsync(handle.fileno())
    return len(lines)


def _key_item(record: DataKeyRecord) -> DeletedItem:
    return DeletedItem(
        "data_key", f"dk{record.version}", record.wrapped_size, record.wrapped_sha256
    )


async def _scrub_control(path: Path, keyring: Keyring) -> None:
    conn = await open_control_connection(path)
    try:
        store = DataKeyStore(conn, keyring)
        for attempt in range(50):
            if await store.scrub_files():
                return
            await asyncio.sleep(0.02 * (attempt + 1))
        log.warning("control WAL still held by a reader; wrapped keys are deleted but not "
                    "yet checkpointed out of the WAL")  # fmt: skip
    finally:
        await conn.close()


async def _shred_backup_keys(data_dir: Path, tenant: TenantId, now: float) -> None:
    """Remove the tenant's data keys from the tenant key store that restores read, first:
    after this no backup of the tenant can be decrypted or restored (docs/operations.md)."""
    path = key_store_path(data_dir)
    existed = await asyncio.to_thread(path.exists)
    try:
        await asyncio.to_thread(backup_keys.shred, path, tenant, now=now)
    except OSError:
        if existed:
            raise  # keys we cannot remove would outlive the deletion: stop, retry later
        log.warning("no tenant key store could be created to record the deletion",
                    extra={"tenant": tenant})  # fmt: skip


def purge_retained_audit(data_dir: Path, now: float, retention_days: float = RETENTION_DAYS) -> int:
    """Drop retained audit entries of deleted tenants older than the retention window;
    delete files left empty. Returns how many entries were dropped."""
    directory = data_dir / RETAINED_AUDIT_DIR
    if not directory.is_dir():
        return 0
    cutoff = now - retention_days * 86_400.0
    dropped = 0
    for file in sorted(directory.glob("*.jsonl")):
        lines = file.read_text(encoding="utf-8").splitlines(keepends=True)
        keep = [line for line in lines if float(json.loads(line).get("ts", 0)) >= cutoff]
        dropped += len(lines) - len(keep)
        if not keep:
            file.unlink()
        elif len(keep) != len(lines):
            tmp = file.with_name(file.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.writelines(keep)
            tmp.replace(file)
    return dropped


async def delete_tenant(
    control: ControlPlane,
    data_dir: Path,
    tenant: TenantId,
    *,
    keyring: Keyring | None,
    now: float,
    actor: str,
    close_store: CloseStore | None = None,
    certificate_out: Path | None = None,
    retention_days: float = RETENTION_DAYS,
) -> DeletionResult:
    """Delete ``tenant`` (see the module docstring) and return its signed certificate.

    ``close_store`` closes the tenant's store in this process (the hub passes
    ``StoreManager.close_tenant``); ``certificate_out`` defaults to
    ``<data_dir>/certificates/<tenant>.json``.
    """
    record = await control.get_tenant(tenant)
    if record is None:
        raise UnknownTenant(tenant)
    path = tenant_path(data_dir, tenant)
    secrets: list[SecretRecord] = []
    if path.is_file():
        conn = await open_tenant_db(path)
        try:
            secrets = await _secret_inventory(conn, tenant)
            await _retain_audit(
                conn,
                data_dir / RETAINED_AUDIT_DIR / f"{tenant}.jsonl",
                now=now,
                retention_days=retention_days,
            )
        finally:
            await conn.close()

    shredded: list[DataKeyRecord] = []
    ring = keyring if keyring is not None else shred_only_keyring()

    async def shred(conn: aiosqlite.Connection, _record: TenantRecord) -> None:
        shredded.extend(await DataKeyStore(conn, ring).delete_tenant_keys(tenant, commit=False))

    await _shred_backup_keys(data_dir, tenant, now)
    deleted = await control.delete_tenant(tenant, now=now, actor=actor, extra=shred)
    await _scrub_control(control.path, ring)
    if close_store is not None:
        await close_store(tenant)

    items: list[DeletedItem] = []
    for file, suffix in zip(database_files(path), ("", "-wal", "-shm", "-journal"), strict=True):
        if file.is_file():
            kind = "tenant_database" if not suffix else "tenant_database" + suffix.replace("-", "_")
            items.append(file_item(file, kind, f"tenants/{tenant}.db{suffix}"))
    items.extend(DeletedItem("secret", s.name, s.size, s.sha256) for s in secrets)
    items.extend(_key_item(k) for k in shredded)
    for file in database_files(path):
        file.unlink(missing_ok=True)

    signing_key = load_or_create_signing_key(signing_key_path(data_dir))
    certificate = issue_certificate(
        signing_key,
        tenant_id=deleted.id,
        tenant_name=deleted.name,
        items=items,
        deleted_at=deleted.deleted_at if deleted.deleted_at is not None else now,
    )
    out = certificate_out or data_dir / CERTIFICATES_DIR / f"{tenant}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dumps_certificate(certificate), encoding="utf-8")
    log.warning(
        "tenant deleted",
        extra={"tenant": tenant, "alert": "tenant_deleted", "items": len(items)},
    )
    return DeletionResult(deleted, certificate, out)
