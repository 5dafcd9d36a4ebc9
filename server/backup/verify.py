"""Reading a backup back: digests, the manifest MAC, file keys, and ``backup verify``.

:func:`open_manifest` authenticates the manifest (HMAC under the manifest key, which only
the master key unwraps); :func:`open_file` checks one file's size and SHA-256 against the
manifest and then decrypts it chunk by chunk (GCM), so a modified, truncated, swapped or
re-bound file is refused with :class:`TamperedBackup` before any of it is used.

:func:`verify_backup` does all of that for every file without writing anything, and
reports per tenant whether its part decrypts, or is *shredded*: its data key is gone from
the tenant key store because the tenant was deleted after the backup.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.secrets.envelope import SymmetricKey
from server.secrets.errors import SecretsError
from server.secrets.keyring import Keyring

from .crypto import SERVER_SCOPE, Sink, mac_matches, open_stream, unwrap_file_key
from .errors import BackupError, BackupFormatError, KeyStoreError, TamperedBackup, TenantShredded
from .files import MANIFEST, check_name, read_manifest, sha256_file, stored_path, tenant_of
from .keystore import KeyStore

OK = "ok"
SHREDDED = "shredded"
DAMAGED = "damaged"
NO_KEY = "no_key"


class _NullSink:
    def write(self, data: bytes, /) -> object:
        return len(data)


@dataclass(frozen=True, slots=True)
class Manifest:
    """An authenticated manifest."""

    doc: dict[str, Any]
    backup_id: str
    server_files: list[dict[str, Any]]
    tenants: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class TenantCheck:
    """One tenant's part of a backup: ``ok``, ``shredded``, ``damaged`` or ``no_key``."""

    tenant: str
    status: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What ``backup verify`` found."""

    backup_id: str
    created: str
    server: str
    server_detail: str
    tenants: list[TenantCheck]

    @property
    def ok(self) -> bool:
        """No file is damaged and every tenant's part decrypts or is shredded on purpose."""
        return self.server == OK and all(t.status in (OK, SHREDDED) for t in self.tenants)


def _b64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise TamperedBackup(f"{what} in the manifest is not valid base64") from None


def _master(keyring: Keyring, key_id: Any) -> SymmetricKey:
    try:
        return keyring.get(str(key_id))
    except SecretsError:
        raise BackupError(
            f"the backup was made with master key {key_id!r}, which the keyring does not "
            f"hold: load the master key file that was in use then"
        ) from None


def open_manifest(root: Path, keyring: Keyring) -> Manifest:
    """Read and authenticate the manifest of the backup in ``root``."""
    doc = read_manifest(root)
    mac = doc.get("mac")
    body = {k: v for k, v in doc.items() if k != "mac"}
    backup_id = doc.get("backup_id")
    if not isinstance(mac, str) or not isinstance(backup_id, str):
        raise TamperedBackup(f"{MANIFEST} has no MAC or backup id")
    master = _master(keyring, doc.get("master_key_id"))
    manifest_key = unwrap_file_key(
        master, _b64(doc.get("manifest_key"), "manifest_key"), scope=SERVER_SCOPE,
        backup_id=backup_id, name=MANIFEST,
    )  # fmt: skip
    if not mac_matches(manifest_key, body, mac):
        raise TamperedBackup(f"{MANIFEST} failed authentication (MAC): it was modified")
    try:
        server_files = list(doc["server"]["files"])
        tenants = list(doc["tenants"])
        for entry in [*server_files, *(t["file"] for t in tenants)]:
            check_name(entry["name"])
        for tenant in tenants:
            if tenant_of(tenant["file"]["name"]) != tenant["id"]:
                raise BackupFormatError("a tenant's file name does not match its id")
    except (KeyError, TypeError) as exc:
        raise BackupFormatError(f"{MANIFEST} is malformed ({exc})") from None
    return Manifest(doc, backup_id, server_files, tenants)


def check_digest(root: Path, entry: dict[str, Any]) -> Path:
    """The sealed file of ``entry``, once its size and SHA-256 match the manifest."""
    name = check_name(entry["name"])
    path = stored_path(root, name)
    if not path.is_file():
        raise TamperedBackup(f"{name!r} is missing from the backup")
    if path.stat().st_size != entry.get("size") or sha256_file(path) != entry.get("sha256"):
        raise TamperedBackup(f"{name!r} does not match its digest in the manifest")
    return path


def open_file(
    root: Path, entry: dict[str, Any], kek: SymmetricKey, *, scope: str, backup_id: str, sink: Sink
) -> int:
    """Check and decrypt one file of the backup into ``sink``; returns the plaintext size."""
    path = check_digest(root, entry)
    name = entry["name"]
    file_key = unwrap_file_key(
        kek, _b64(entry.get("key"), f"the key of {name!r}"), scope=scope, backup_id=backup_id,
        name=name,
    )  # fmt: skip
    with path.open("rb") as src:
        size = open_stream(file_key, src, sink, scope=scope, backup_id=backup_id, name=name)
    if size != entry.get("plain_size"):
        raise TamperedBackup(f"{name!r} has the wrong size after decryption")
    return size


def tenant_key(store: KeyStore, tenant: dict[str, Any], keyring: Keyring) -> SymmetricKey:
    """The data key a tenant's part was sealed under, from the tenant key store.

    :class:`TenantShredded` when the tenant was deleted (its keys are gone),
    :class:`KeyStoreError` when the store simply lacks it (a wrong or stale store).
    """
    tenant_id = str(tenant["id"])
    data_key = store.data_key(tenant_id, int(tenant["data_key_version"]), keyring)
    if data_key is not None:
        return data_key.key
    if tenant_id in store.deleted:
        raise TenantShredded(f"tenant {tenant_id} was deleted: its data key is shredded")
    raise KeyStoreError(
        f"the tenant key store {str(store.path)!r} has no data key {tenant['data_key_version']} "
        f"for tenant {tenant_id}, and no record of its deletion: is it the store of this server?"
    )


def verify_backup(root: Path, keyring: Keyring, store: KeyStore) -> VerifyReport:
    """Check every digest and decrypt every file without restoring anything."""
    manifest = open_manifest(root, keyring)
    master = _master(keyring, manifest.doc.get("master_key_id"))
    server, server_detail = OK, ""
    try:
        for entry in manifest.server_files:
            open_file(root, entry, master, scope=SERVER_SCOPE, backup_id=manifest.backup_id,
                      sink=_NullSink())  # fmt: skip
    except BackupError as exc:
        server, server_detail = DAMAGED, str(exc)
    checks: list[TenantCheck] = []
    for tenant in manifest.tenants:
        tenant_id = str(tenant["id"])
        try:
            key = tenant_key(store, tenant, keyring)
        except TenantShredded as exc:
            try:
                check_digest(root, tenant["file"])
            except TamperedBackup as damaged:
                checks.append(TenantCheck(tenant_id, DAMAGED, str(damaged)))
                continue
            checks.append(TenantCheck(tenant_id, SHREDDED, str(exc)))
            continue
        except KeyStoreError as exc:
            checks.append(TenantCheck(tenant_id, NO_KEY, str(exc)))
            continue
        try:
            open_file(root, tenant["file"], key, scope=tenant_id, backup_id=manifest.backup_id,
                      sink=_NullSink())  # fmt: skip
        except BackupError as exc:
            checks.append(TenantCheck(tenant_id, DAMAGED, str(exc)))
            continue
        checks.append(TenantCheck(tenant_id, OK))
    return VerifyReport(
        manifest.backup_id, str(manifest.doc.get("created", "")), server, server_detail, checks
    )
