"""``hypertab restore DIR``: a backup back into an empty data directory.

How it works
------------
1. The target must be empty: missing, or holding nothing but the master key file and the
   tenant key store (which an operator may have put there for the restore).
2. The manifest is authenticated (MAC) and the tenant key store is read. Every tenant of
   the backup must have its data key in the store, or a tombstone there saying it was
   deleted since: those are *not* restored (their part cannot be decrypted anyway). A
   tenant with neither is refused: the store is not this server's.
3. Every file is checked (size, SHA-256) and decrypted (GCM, chunk by chunk) into a
   staging directory inside the target; any failure removes the staging directory and
   leaves the target as it was.
4. In the staged ``control.db``: the restored tenants' data keys are put back from the key
   store (same versions, same wrapped bytes), and each tenant deleted after the backup is
   deleted again (marked deleted, its keys revoked, a ``tenant.deleted`` audit entry by
   ``restore``), so a restore never brings it back.
5. The staged files are moved into place. Tenant ids, API keys (the pepper is restored
   with them), table versions and audit chains are those of the backup.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.auth.principal import TenantId
from server.config import load_pepper
from server.control.plane import ControlPlane
from server.lifecycle.controldb import open_control_connection
from server.private import PRIVATE_DIR, private_directory, private_tree
from server.secrets.datakeys import DataKeyStore
from server.secrets.envelope import SymmetricKey
from server.secrets.keyring import Keyring
from server.store.schema import tenant_path

from .crypto import SERVER_SCOPE
from .errors import BackupFormatError, RestoreTargetError, TenantShredded
from .files import (
    CONTROL_DB,
    CONTROL_NAME,
    KEY_MATERIAL_FILES,
    open_private,
    server_file_target,
)
from .keystore import KeyStore
from .verify import Manifest, open_file, open_manifest, tenant_key

STAGING = ".restore-staging"
RESTORE_ACTOR = "restore"


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What was restored, and which tenants were left out because they were deleted."""

    backup_id: str
    tenants: list[str] = field(default_factory=list)
    deleted_since: list[str] = field(default_factory=list)


def check_target(data_dir: Path, keep: set[Path]) -> bool:
    """Refuse a data directory that holds anything but the key files in ``keep``;
    returns whether it exists."""
    if not data_dir.exists():
        return False
    if not data_dir.is_dir():
        raise RestoreTargetError(f"{str(data_dir)!r} is not a directory")
    allowed = {p.resolve() for p in keep}
    for child in sorted(data_dir.iterdir()):
        if child.resolve() in allowed or (child.name in KEY_MATERIAL_FILES and child.is_file()):
            continue
        raise RestoreTargetError(
            f"refusing to restore into {str(data_dir)!r}: it is not empty ({child.name!r}); "
            "restore into a new, empty data directory"
        )
    return True


def _plan(manifest: Manifest, store: KeyStore, keyring: Keyring) -> tuple[list[str], list[str]]:
    restored: list[str] = []
    deleted: list[str] = []
    for tenant in manifest.tenants:
        try:
            tenant_key(store, tenant, keyring)
        except TenantShredded:
            deleted.append(str(tenant["id"]))
        else:  # KeyStoreError propagates: refuse before writing anything
            restored.append(str(tenant["id"]))
    return restored, deleted


async def _fix_control(
    staging: Path,
    restored: list[str],
    deleted: list[str],
    store: KeyStore,
    keyring: Keyring,
    *,
    environment: str,
    now: float,
) -> None:
    """Put the restored tenants' data keys back; delete the tenants deleted since."""
    conn = await open_control_connection(staging / CONTROL_DB)
    try:
        await DataKeyStore(conn, keyring).ensure_schema()
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for tenant in restored:
                keys = store.keys_of(tenant)
                current = max((k.version for k in keys if k.retired_at is None), default=None)
                for key in keys:
                    # One current version per tenant: any other unretired one was retired
                    # after it last reached the store.
                    retired = key.retired_at
                    if retired is None and key.version != current:
                        retired = now
                    await conn.execute(
                        "INSERT INTO _ht_data_keys (tenant_id, key_version, wrapped_key,"
                        " master_key_id, created_at, retired_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (tenant, key.version, key.wrapped, key.master_key_id, key.created_at,
                         retired),
                    )  # fmt: skip
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()
    finally:
        await conn.close()
    if not deleted:
        return
    plane = await ControlPlane.open(
        staging, pepper=load_pepper(staging), environment=environment, watch=False
    )
    try:
        for tenant in deleted:
            await plane.delete_tenant(TenantId(tenant), now=now, actor=RESTORE_ACTOR)
    finally:
        await plane.close()


def _decrypt_into(
    target: Path, root: Path, entry: dict[str, Any], kek: SymmetricKey, scope: str, backup_id: str
) -> None:
    target.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    with open_private(target) as handle:
        open_file(root, entry, kek, scope=scope, backup_id=backup_id, sink=handle)
        handle.flush()
        os.fsync(handle.fileno())


def _stage(
    root: Path,
    data_dir: Path,
    manifest: Manifest,
    restored: list[str],
    store: KeyStore,
    keyring: Keyring,
) -> Path:
    """Decrypt every file to restore into a new staging directory inside ``data_dir``."""
    master = keyring.get(str(manifest.doc["master_key_id"]))
    private_directory(data_dir)
    os.chmod(data_dir, PRIVATE_DIR)
    staging = data_dir / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=PRIVATE_DIR)
    for entry in manifest.server_files:
        name = entry["name"]
        target = staging / CONTROL_DB if name == CONTROL_NAME else server_file_target(staging, name)
        _decrypt_into(target, root, entry, master, SERVER_SCOPE, manifest.backup_id)
    if not (staging / CONTROL_DB).is_file():
        raise BackupFormatError(f"the backup has no {CONTROL_NAME}")
    by_id = {str(t["id"]): t for t in manifest.tenants}
    for tenant in restored:
        info = by_id[tenant]
        _decrypt_into(
            tenant_path(staging, tenant), root, info["file"],
            tenant_key(store, info, keyring), tenant, manifest.backup_id,
        )  # fmt: skip
    return staging


def _move_into_place(staging: Path, data_dir: Path) -> None:
    private_tree(staging)
    for child in sorted(staging.iterdir()):
        os.replace(child, data_dir / child.name)
    staging.rmdir()


def _abandon(data_dir: Path, existed: bool) -> None:
    shutil.rmtree(data_dir / STAGING, ignore_errors=True)
    if not existed:
        with contextlib.suppress(OSError):
            data_dir.rmdir()


async def restore_backup(
    root: Path,
    data_dir: Path,
    *,
    keyring: Keyring,
    store: KeyStore,
    keep: set[Path],
    environment: str = "live",
    now: float | None = None,
) -> RestoreResult:
    """Restore the backup in ``root`` into the empty ``data_dir`` (see the module docs).

    ``keep`` are key files allowed to be in ``data_dir`` already (the master key file and
    the tenant key store when they live there).
    """
    existed = await asyncio.to_thread(check_target, data_dir, keep)
    manifest = await asyncio.to_thread(open_manifest, root, keyring)
    restored, deleted = _plan(manifest, store, keyring)
    try:
        staging = await asyncio.to_thread(
            _stage, root, data_dir, manifest, restored, store, keyring
        )
        await _fix_control(
            staging, restored, deleted, store, keyring, environment=environment,
            now=time.time() if now is None else now,
        )  # fmt: skip
        await asyncio.to_thread(_move_into_place, staging, data_dir)
    except BaseException:
        await asyncio.to_thread(_abandon, data_dir, existed)
        raise
    return RestoreResult(manifest.backup_id, restored, deleted)
