"""The tenant key store: the copy of tenants' wrapped data keys that restores read, kept
apart from the backups and shredded by tenant deletion.

Why it exists
-------------
A backup must not carry tenants' data keys: if it did (wrapped by the master key, as in
``control.db``), restoring an old backup with the master key would bring back a tenant
deleted since, and the deletion promise would not cover backups. So the backup's copy of
``control.db`` has ``_ht_data_keys`` emptied, and each tenant's part of the backup is
encrypted under keys wrapped by that tenant's data key. To restore after losing the data
directory, the data keys must then live somewhere else that deletion reaches: this file.

* ``hypertab backup`` brings it up to date (:func:`sync`) before it writes a backup: every
  live tenant's data key versions, exactly as wrapped in ``control.db``; versions retired
  since are kept (older backups were made under them) until the tenant is deleted.
* Tenant deletion (:mod:`server.lifecycle.delete`) removes the tenant's keys from it
  (:func:`shred`) *before* the control transaction that shreds them in ``control.db``, and
  records a tombstone, so a restore says "deleted after this backup" instead of failing.
* ``hypertab restore`` and ``hypertab backup verify`` read it (:func:`load`).

It lives next to the master key file (default: the key file's directory, name
``tenant-keys.json``; ``HYPERTAB_TENANT_KEY_STORE`` names another place). Like the master
key file it is kept apart from the backups, and like a retired master key an old copy of
it must not be kept: it is a live replica, not an archive (see docs/operations.md).

Format (JSON, mode 0600, replaced atomically under an exclusive ``flock``)::

    {"format": "hypertab-tenant-keys/1",
     "tenants": {"<id>": [{"version": 1, "wrapped": "<base64>", "master_key_id": "mk_..",
                            "created_at": 1.0, "retired_at": null}, ...]},
     "deleted": {"<id>": <deleted_at>}}

The wrapped keys are encrypted by a master key: the file alone decrypts nothing.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.auth.principal import TenantId
from server.lifecycle.keysource import key_file_path
from server.secrets.envelope import (
    DataKey,
    key_id_of,
    unwrap_data_key,
    wrap_data_key,
)
from server.secrets.errors import SecretsError
from server.secrets.files import read_private_file, write_private_file
from server.secrets.keyring import ENV_MASTER_KEYS, Keyring

from .errors import KeyStoreError

FORMAT = "hypertab-tenant-keys/1"
ENV_KEY_STORE = "HYPERTAB_TENANT_KEY_STORE"
DEFAULT_NAME = "tenant-keys.json"


def key_store_path(data_dir: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Where the tenant key store of ``data_dir`` lives (whether or not it exists)."""
    env = os.environ if environ is None else environ
    named = env.get(ENV_KEY_STORE)
    if named:
        return Path(named)
    if env.get(ENV_MASTER_KEYS):
        return data_dir / DEFAULT_NAME
    return key_file_path(data_dir, env).parent / DEFAULT_NAME


def key_store_beside(key_file: Path, environ: Mapping[str, str] | None = None) -> Path:
    """The key store that goes with the master key file ``key_file``."""
    env = os.environ if environ is None else environ
    named = env.get(ENV_KEY_STORE)
    return Path(named) if named else key_file.parent / DEFAULT_NAME


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One data key version as wrapped in ``control.db``'s ``_ht_data_keys``."""

    version: int
    wrapped: bytes
    master_key_id: str
    created_at: float
    retired_at: float | None

    def to_json(self) -> dict[str, Any]:
        """The JSON form written to the file."""
        return {
            "version": self.version,
            "wrapped": base64.b64encode(self.wrapped).decode("ascii"),
            "master_key_id": self.master_key_id,
            "created_at": self.created_at,
            "retired_at": self.retired_at,
        }

    @classmethod
    def from_json(cls, doc: Any) -> StoredKey:
        """Parse one entry; :class:`KeyStoreError` when malformed."""
        try:
            retired = doc["retired_at"]
            return cls(
                version=int(doc["version"]),
                wrapped=base64.b64decode(doc["wrapped"], validate=True),
                master_key_id=str(doc["master_key_id"]),
                created_at=float(doc["created_at"]),
                retired_at=None if retired is None else float(retired),
            )
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise KeyStoreError("the tenant key store has a malformed entry") from None


@dataclass(slots=True)
class KeyStore:
    """The parsed tenant key store."""

    path: Path
    tenants: dict[str, list[StoredKey]]
    deleted: dict[str, float]

    def keys_of(self, tenant: str) -> list[StoredKey]:
        """Every stored version of ``tenant``'s data key, oldest first (empty if none)."""
        return sorted(self.tenants.get(tenant, []), key=lambda k: k.version)

    def data_key(self, tenant: str, version: int, keyring: Keyring) -> DataKey | None:
        """``tenant``'s data key ``version``, unwrapped; ``None`` when it is not stored.

        :class:`KeyStoreError` when it is stored but the keyring cannot unwrap it.
        """
        for stored in self.tenants.get(tenant, []):
            if stored.version == version:
                try:
                    master = keyring.get(key_id_of(stored.wrapped))
                    return unwrap_data_key(
                        master, stored.wrapped, tenant=TenantId(tenant), version=version
                    )
                except SecretsError as exc:
                    raise KeyStoreError(
                        f"cannot unwrap data key {version} of tenant {tenant}: {exc}"
                    ) from None
        return None

    def to_json(self) -> bytes:
        """The file's bytes."""
        doc = {
            "format": FORMAT,
            "tenants": {
                t: [k.to_json() for k in sorted(keys, key=lambda k: k.version)]
                for t, keys in sorted(self.tenants.items())
            },
            "deleted": dict(sorted(self.deleted.items())),
        }
        return (json.dumps(doc, indent=1) + "\n").encode()


def _parse(path: Path, data: bytes) -> KeyStore:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise KeyStoreError(f"tenant key store {str(path)!r} is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeyStoreError(f"tenant key store {str(path)!r}: expected format {FORMAT!r}")
    tenants = doc.get("tenants")
    deleted = doc.get("deleted")
    if not isinstance(tenants, dict) or not isinstance(deleted, dict):
        raise KeyStoreError(f"tenant key store {str(path)!r} is malformed")
    parsed = {
        str(t): [StoredKey.from_json(k) for k in keys]
        for t, keys in tenants.items()
        if isinstance(keys, list)
    }
    try:
        tombstones = {str(t): float(at) for t, at in deleted.items()}
    except (TypeError, ValueError):
        raise KeyStoreError(f"tenant key store {str(path)!r} is malformed") from None
    return KeyStore(path, parsed, tombstones)


def load(path: Path) -> KeyStore:
    """Read the key store; :class:`KeyStoreError` if missing, open to others or malformed."""
    if not path.is_file():
        raise KeyStoreError(
            f"no tenant key store at {str(path)!r}: copy it there from where you keep it "
            f"(next to the master key file), or name it with {ENV_KEY_STORE}"
        )
    try:
        data = read_private_file(path)
    except SecretsError as exc:
        raise KeyStoreError(str(exc).replace("key file", "tenant key store")) from None
    return _parse(path, data)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[KeyStore]:
    """The key store (empty if the file is new) under an exclusive lock; written back on
    a normal exit."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        store = load(path) if path.exists() else KeyStore(path, {}, {})
        yield store
        write_private_file(path, store.to_json(), overwrite=True)
    finally:
        os.close(fd)  # releases the flock


def sync(
    path: Path,
    rows: list[tuple[str, StoredKey]],
    deleted: Mapping[str, float],
    keyring: Keyring,
    *,
    now: float,
) -> KeyStore:
    """Bring the key store up to date with ``control.db`` and return it.

    ``rows`` are every ``(tenant, key)`` of ``_ht_data_keys``; ``deleted`` the deleted
    tenants with their deletion time. Versions no longer in ``control.db`` (destroyed after
    a rotation) are kept for older backups; deleted tenants lose every key. Entries wrapped
    by a master key other than the current one are re-wrapped under it when the keyring
    still holds their key, so removing an old master key does not orphan them.
    """
    live: dict[str, dict[int, StoredKey]] = {}
    for tenant, key in rows:
        live.setdefault(tenant, {})[key.version] = key
    current = keyring.current
    with _locked(path) as store:
        for tenant, at in deleted.items():
            store.tenants.pop(tenant, None)
            store.deleted.setdefault(tenant, at)
        for tenant, keys in live.items():
            if tenant in deleted:
                continue
            if tenant in store.deleted:
                continue  # deleted after this snapshot was taken: never bring keys back
            merged = {k.version: k for k in store.tenants.get(tenant, [])}
            for version, old in list(merged.items()):
                if version not in keys and old.retired_at is None:
                    # Destroyed after a rotation since the last sync: it was retired.
                    merged[version] = dataclasses.replace(old, retired_at=now)
            merged.update(keys)
            store.tenants[tenant] = list(merged.values())
        for tenant, stored in store.tenants.items():
            store.tenants[tenant] = [_rewrapped(tenant, k, keyring, current.key_id) for k in stored]
        return store


def _rewrapped(tenant: str, key: StoredKey, keyring: Keyring, current_id: str) -> StoredKey:
    if key.master_key_id == current_id or key.master_key_id not in keyring.ids:
        return key
    data_key = unwrap_data_key(
        keyring.get(key.master_key_id), key.wrapped, tenant=TenantId(tenant), version=key.version
    )
    return StoredKey(
        key.version,
        wrap_data_key(keyring.current, data_key),
        current_id,
        key.created_at,
        key.retired_at,
    )


def shred(path: Path, tenant: str, *, now: float) -> None:
    """Remove ``tenant``'s data keys from the key store and record its deletion.

    Creates the store when there is none yet, so a first backup running concurrently
    cannot copy the keys of a tenant being deleted into it.
    """
    with _locked(path) as store:
        store.tenants.pop(tenant, None)
        store.deleted.setdefault(tenant, now)


def rewrap(path: Path, keyring: Keyring) -> int:
    """Re-wrap every entry under the keyring's current master key (after a master key
    rotation, like ``DataKeyStore.rewrap_all``); returns how many changed. No store: 0."""
    if not path.exists():
        return 0
    current = keyring.current.key_id
    with _locked(path) as store:
        changed = sum(
            k.master_key_id != current and k.master_key_id in keyring.ids
            for keys in store.tenants.values()
            for k in keys
        )
        for tenant, stored in store.tenants.items():
            store.tenants[tenant] = [_rewrapped(tenant, k, keyring, current) for k in stored]
    return changed


def master_keys_in_use(path: Path) -> set[str]:
    """Ids of master keys still wrapping an entry of the store (none when it is absent)."""
    if not path.exists():
        return set()
    return {k.master_key_id for keys in load(path).tenants.values() for k in keys}
