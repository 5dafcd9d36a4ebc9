"""Key rotation: master keys (rewrap data keys, secrets untouched) and a tenant's data key
(re-encrypt its secrets, then shred the old version).

Master rotation (:func:`rotate_master_key`): a new key is appended to the key file and made
current, every data key is re-wrapped under it (idempotent; in ``control.db`` and in the
tenant key store of backups), and the old keys stay in the
file until :func:`remove_master_key` is allowed to drop them: it refuses while any data key
still names the key. Running hubs notice the changed key file and reload it.

Tenant rotation (:func:`rotate_tenant_key`): the next data key version is created (the old
one retired, kept), every secret is re-encrypted under it in the tenant database, then the
retired versions no secret uses are shredded and the WAL files scrubbed. A crash between
steps leaves every secret readable; re-running finishes the job.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from server.alerts.events import master_key_rotated
from server.audit import log as audit_log
from server.auth.principal import TenantId
from server.backup import keystore as backup_keys
from server.secrets.datakeys import DataKeyStore
from server.secrets.errors import KeyInUseError
from server.secrets.keyring import Keyring, add_master_key, load_key_file
from server.secrets.keyring import remove_master_key as _remove_from_file
from server.secrets.store import SecretStore


@dataclass(frozen=True, slots=True)
class MasterRotation:
    """The new current master key's id and how many data keys were re-wrapped."""

    key_id: str
    rewrapped: int
    keyring: Keyring


async def rotate_master_key(
    key_file: Path,
    control_conn: aiosqlite.Connection,
    *,
    actor: str = "system",
    now: float | None = None,
) -> MasterRotation:
    """Add a master key to ``key_file`` and re-wrap every data key under it; audited
    (``keyring.rotated`` in the control log, which raises an alert)."""
    key_id = add_master_key(key_file)
    ring = load_key_file(key_file)
    rewrapped = await DataKeyStore(control_conn, ring).rewrap_all(ring)
    # The tenant key store restores read follows suit, so removing the old key later
    # cannot orphan what restores need (docs/operations.md, "Backup and restore").
    rewrapped += await asyncio.to_thread(
        backup_keys.rewrap, backup_keys.key_store_beside(key_file), ring
    )
    at = time.time() if now is None else now
    await audit_log.ensure_schema(control_conn, commit=True)
    await audit_log.append(
        control_conn, master_key_rotated(key_id, rewrapped, actor, at), commit=True
    )
    return MasterRotation(key_id, rewrapped, ring)


async def rewrap(keyring: Keyring, control_conn: aiosqlite.Connection) -> int:
    """Re-wrap data keys not under the current master key (finish an interrupted rotation)."""
    return await DataKeyStore(control_conn, keyring).rewrap_all(keyring)


async def remove_master_key(
    key_file: Path, key_id: str, control_conn: aiosqlite.Connection, keyring: Keyring
) -> None:
    """Drop ``key_id`` from the key file; refused while a data key still names it, in
    ``control.db`` or in the tenant key store."""
    in_use = await DataKeyStore(control_conn, keyring).master_keys_in_use()
    store = backup_keys.key_store_beside(key_file)
    if key_id in await asyncio.to_thread(backup_keys.master_keys_in_use, store):
        raise KeyInUseError(
            f"master key {key_id!r} still wraps data keys in the tenant key store "
            f"{str(store)!r}; run `hypertab keyring rotate` first"
        )
    _remove_from_file(key_file, key_id, in_use)


@dataclass(frozen=True, slots=True)
class TenantRotation:
    """The tenant's new data key version, secrets re-encrypted, versions shredded."""

    version: int
    reencrypted: int
    destroyed: list[int]


async def rotate_tenant_key(
    datakeys: DataKeyStore,
    tenant_conn: aiosqlite.Connection,
    tenant: TenantId,
    *,
    now: float,
) -> TenantRotation:
    """Rotate ``tenant``'s data key and re-encrypt its secrets (see the module docstring)."""
    new_key = await datakeys.rotate_tenant_key(tenant, now=now)
    store = SecretStore(tenant_conn, tenant, datakeys)
    count = await store.reencrypt_all(new_key)
    await store.scrub_files()
    destroyed = await datakeys.destroy_retired_keys(tenant, keep=await store.key_versions_in_use())
    await datakeys.scrub_files()
    return TenantRotation(new_key.version, count, [r.version for r in destroyed])
