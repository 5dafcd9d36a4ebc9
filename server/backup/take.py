"""``hypertab backup DIR``: a consistent online backup of the whole server.

How it works
------------
1. Every live tenant gets its data key now if it has none yet (created before master keys
   were configured): a tenant's part is always encrypted under its data key.
2. ``control.db`` is copied with SQLite's online backup API in one step: a read
   transaction on the WAL database, so the running server keeps committing while the
   snapshot is taken (WAL readers never block the writer). In the copy,
   ``_ht_data_keys`` is deleted with ``secure_delete`` and the file is ``VACUUM``-ed, so no
   page of it holds a wrapped data key.
3. The tenant key store is brought up to date from the snapshot's data keys
   (:func:`.keystore.sync`); tenants deleted meanwhile (tombstoned there) are left out.
4. Each live tenant's database is copied the same way (a snapshot taken after the backup
   began, so every op acknowledged before holds) and sealed under a fresh file key wrapped
   by the tenant's current data key. The manifest records its table versions.
5. The rest of the data directory (pepper, signing key, certificates, retained audit, any
   other SQLite file, copied with the backup API) is sealed under file keys wrapped by the
   current master key. The master key file and the tenant key store are never copied.
6. ``manifest.json`` is written last (its presence marks a complete backup), with an
   HMAC-SHA256 under a manifest key wrapped by the master key.

Plaintext copies exist only in ``<data_dir>/.backup-scratch-<backup id>`` (0700) while they are
sealed, never in the backup directory.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import os
import secrets
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.auth.principal import TenantId
from server.lifecycle.controldb import open_control_connection
from server.lifecycle.keysource import key_file_path
from server.lifecycle.provision import ensure_data_key
from server.private import PRIVATE_DIR
from server.secrets.datakeys import DataKeyStore
from server.secrets.envelope import SymmetricKey, key_id_of, unwrap_data_key
from server.secrets.errors import SecretsError
from server.secrets.files import write_private_file
from server.secrets.keyring import Keyring
from server.store.schema import tenant_path

from . import keystore
from .crypto import (
    SERVER_SCOPE,
    canonical,
    manifest_mac,
    new_file_key,
    seal_stream,
    wrap_file_key,
)
from .errors import BackupError
from .files import (
    CONTROL_DB,
    CONTROL_NAME,
    FORMAT,
    MANIFEST,
    SCRATCH,
    data_dir_files,
    is_sqlite,
    open_private,
    stored_path,
    tenant_name,
)

__all__ = ["BackupResult", "ensure_tenant_keys", "snapshot_database", "take_backup"]


@dataclass(frozen=True, slots=True)
class BackupResult:
    """What a backup holds."""

    path: Path
    backup_id: str
    manifest: dict[str, Any]
    tenants: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Tenants live when the backup began but deleted before their copy was taken."""


class _HashingSink:
    """Writes through to a file and keeps the SHA-256 and size of what went by."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> object:
        self.digest.update(data)
        self.size += len(data)
        return self._handle.write(data)


async def ensure_tenant_keys(control_db: Path, keyring: Keyring, *, now: float) -> int:
    """Give every live tenant without a data key its first one; returns how many."""
    conn = await open_control_connection(control_db)
    try:
        await DataKeyStore(conn, keyring).ensure_schema()
        async with conn.execute("SELECT id FROM tenants WHERE deleted_at IS NULL") as cursor:
            tenants = [TenantId(str(row[0])) for row in await cursor.fetchall()]
        made = 0
        for tenant in tenants:
            with contextlib.suppress(SecretsError):  # made concurrently: fine
                made += await ensure_data_key(conn, keyring, tenant, now=now)
        return made
    finally:
        await conn.close()


def snapshot_database(source: Path, target: Path) -> None:
    """Copy a (WAL) SQLite database to a new file in one backup step: a consistent
    snapshot taken inside one read transaction, without blocking the source's writer.
    The copy is a single file in rollback-journal mode."""
    src = sqlite3.connect(source, timeout=30.0)
    try:
        with open_private(target):
            pass
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # pages=-1: everything in one step, one read snapshot
            dst.execute("PRAGMA journal_mode=DELETE").fetchall()
        finally:
            dst.close()
    finally:
        src.close()


def _scrub_data_keys(copy: Path) -> list[tuple[str, keystore.StoredKey]]:
    """Read and then remove every wrapped data key from a control.db copy."""
    conn = sqlite3.connect(copy, isolation_level=None)
    try:
        try:
            rows = conn.execute(
                "SELECT tenant_id, key_version, wrapped_key, master_key_id, created_at,"
                " retired_at FROM _ht_data_keys"
            ).fetchall()
        except sqlite3.OperationalError:
            return []  # never had master keys: no data key table
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("DELETE FROM _ht_data_keys")
        conn.execute("VACUUM")  # rebuild: no free page keeps the deleted bytes
    finally:
        conn.close()
    return [
        (
            str(tenant),
            keystore.StoredKey(
                int(version),
                bytes(wrapped),
                str(master),
                float(created),
                None if retired is None else float(retired),
            ),
        )
        for tenant, version, wrapped, master, created, retired in rows
    ]


def _tenants(copy: Path) -> tuple[list[str], dict[str, float]]:
    conn = sqlite3.connect(copy)
    try:
        rows = conn.execute("SELECT id, deleted_at FROM tenants ORDER BY id").fetchall()
    finally:
        conn.close()
    live = [str(t) for t, deleted in rows if deleted is None]
    return live, {str(t): float(d) for t, d in rows if d is not None}


def _table_versions(copy: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(copy)
    try:
        rows = conn.execute("SELECT sql, version, dropped FROM _ht_tables ORDER BY sql").fetchall()
    except sqlite3.OperationalError:
        rows = []
    finally:
        conn.close()
    return [{"sql": str(s), "version": int(v), "dropped": bool(d)} for s, v, d in rows]


def _seal(
    plain: Path, root: Path, name: str, kek: SymmetricKey, scope: str, backup_id: str
) -> dict[str, Any]:
    file_key = new_file_key()
    target = stored_path(root, name)
    target.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    with plain.open("rb") as src, open_private(target) as handle:
        sink = _HashingSink(handle)
        plain_size = seal_stream(file_key, src, sink, scope=scope, backup_id=backup_id, name=name)
        handle.flush()
        os.fsync(handle.fileno())
    wrapped = wrap_file_key(kek, file_key, scope=scope, backup_id=backup_id, name=name)
    return {
        "name": name,
        "size": sink.size,
        "sha256": sink.digest.hexdigest(),
        "plain_size": plain_size,
        "key": base64.b64encode(wrapped).decode("ascii"),
    }


def _prepare_out(out: Path) -> bool:
    """Create the backup directory (0700); ``True`` if it was created here."""
    if out.exists():
        if not out.is_dir() or any(out.iterdir()):
            raise BackupError(f"{str(out)!r} exists and is not an empty directory")
        os.chmod(out, PRIVATE_DIR)
        return False
    out.mkdir(mode=PRIVATE_DIR, parents=True)
    return True


def _current_key(
    tenant: str, rows: list[tuple[str, keystore.StoredKey]], keyring: Keyring
) -> tuple[int, SymmetricKey] | None:
    current = [k for t, k in rows if t == tenant and k.retired_at is None]
    if not current:
        return None
    stored = current[0]
    master = keyring.get(key_id_of(stored.wrapped))
    data_key = unwrap_data_key(
        master, stored.wrapped, tenant=TenantId(tenant), version=stored.version
    )
    return stored.version, data_key.key


def take_backup(
    data_dir: Path, out: Path, *, keyring: Keyring, key_store: Path, now: float
) -> BackupResult:
    """Write a backup of ``data_dir`` into the new or empty directory ``out``.

    Safe while a server writes to ``data_dir``. Call :func:`ensure_tenant_keys` first so
    every live tenant has a data key (a tenant without one is refused here).
    """
    control = data_dir / CONTROL_DB
    if not control.is_file():
        raise BackupError(f"no {CONTROL_DB} in {str(data_dir)!r}: not a data directory")
    if out.resolve().is_relative_to(data_dir.resolve()):
        raise BackupError("the backup directory must be outside the data directory")
    created = _prepare_out(out)
    backup_id = f"bk_{secrets.token_hex(8)}"
    scratch = data_dir / f"{SCRATCH}-{backup_id}"  # one per backup: they may run at once
    scratch.mkdir(mode=PRIVATE_DIR)
    try:
        result = _write(data_dir, out, scratch, backup_id, keyring, key_store, now)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for child in out.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def _write(
    data_dir: Path,
    out: Path,
    scratch: Path,
    backup_id: str,
    keyring: Keyring,
    key_store: Path,
    now: float,
) -> BackupResult:
    master = keyring.current
    control_copy = scratch / CONTROL_DB
    snapshot_database(data_dir / CONTROL_DB, control_copy)
    rows = _scrub_data_keys(control_copy)
    live, deleted = _tenants(control_copy)
    store = keystore.sync(key_store, rows, deleted, keyring, now=now)
    server_files = [_seal(control_copy, out, CONTROL_NAME, master, SERVER_SCOPE, backup_id)]
    control_copy.unlink()

    tenants: list[dict[str, Any]] = []
    skipped: list[str] = []
    for tenant in live:
        key = _current_key(tenant, rows, keyring)
        if key is None:
            raise BackupError(f"tenant {tenant} has no data key: run the backup again")
        source = tenant_path(data_dir, tenant)
        if tenant in store.deleted or not source.is_file():
            skipped.append(tenant)  # deleted after the control snapshot
            continue
        version, data_key = key
        copy = scratch / f"{tenant}.db"
        snapshot_database(source, copy)
        tables = _table_versions(copy)
        entry = _seal(copy, out, tenant_name(tenant), data_key, tenant, backup_id)
        copy.unlink()
        tenants.append({"id": tenant, "data_key_version": version, "tables": tables,
                        "file": entry})  # fmt: skip

    # Key material is never copied, wherever it was configured to live.
    never = {key_store, key_store.with_name(key_store.name + ".lock"), key_file_path(data_dir)}
    for name, path in data_dir_files(data_dir, skip={p.resolve() for p in never}):
        if is_sqlite(path):
            copy = scratch / "file.db"
            snapshot_database(path, copy)
            server_files.append(_seal(copy, out, name, master, SERVER_SCOPE, backup_id))
            copy.unlink()
        else:
            server_files.append(_seal(path, out, name, master, SERVER_SCOPE, backup_id))

    manifest_key = new_file_key()
    wrapped_manifest_key = wrap_file_key(
        master, manifest_key, scope=SERVER_SCOPE, backup_id=backup_id, name=MANIFEST
    )
    body: dict[str, Any] = {
        "format": FORMAT,
        "backup_id": backup_id,
        "created_at": now,
        "created": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="seconds"),
        "master_key_id": master.key_id,
        "manifest_key": base64.b64encode(wrapped_manifest_key).decode("ascii"),
        "server": {"files": server_files},
        "tenants": tenants,
        "deleted_tenants": sorted(deleted),
    }
    manifest = {**body, "mac": manifest_mac(manifest_key, body)}
    write_private_file(out / MANIFEST, canonical(manifest) + b"\n", overwrite=False)
    return BackupResult(out, backup_id, manifest, [t["id"] for t in tenants], skipped)
