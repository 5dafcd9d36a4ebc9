"""Per-tenant data keys, stored wrapped by a master key in the control database.

Table ``_ht_data_keys`` (this module's only table)::

    tenant_id TEXT, key_version INTEGER, wrapped_key BLOB, master_key_id TEXT,
    created_at REAL, retired_at REAL NULL, PRIMARY KEY (tenant_id, key_version)

A tenant has exactly one *current* version (``retired_at IS NULL``, enforced by a partial
unique index) and possibly retired versions that still decrypt secrets not yet
re-encrypted. Unwrapped keys are cached in memory, only from committed reads, and every
write drops the tenant's cached keys, so a rotation, deletion or rolled-back transaction
never leaves a stale key in the cache.

Mutating methods follow the ``commit`` contract of :mod:`.transactions`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Collection
from dataclasses import dataclass

import aiosqlite

from server.auth.principal import TenantId
from server.secrets.envelope import DataKey, key_id_of, new_data_key, unwrap_data_key, wrap_data_key
from server.secrets.errors import DataKeyError, SecretsUsageError
from server.secrets.keyring import Keyring
from server.secrets.transactions import secure_delete, truncate_wal, write_transaction

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS _ht_data_keys (
        tenant_id     TEXT    NOT NULL,
        key_version   INTEGER NOT NULL CHECK (key_version >= 1),
        wrapped_key   BLOB    NOT NULL,
        master_key_id TEXT    NOT NULL,
        created_at    REAL    NOT NULL,
        retired_at    REAL,
        PRIMARY KEY (tenant_id, key_version)
    )
    """,
    """
    CREATE UNIQUE INDEX IF NOT EXISTS _ht_data_keys_current
        ON _ht_data_keys (tenant_id) WHERE retired_at IS NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS _ht_data_keys_master
        ON _ht_data_keys (master_key_id)
    """,
)


@dataclass(frozen=True, slots=True)
class DataKeyRecord:
    """What may be shown about a stored data key: never the key, only a digest of the
    wrapped blob (usable as a deletion-certificate item)."""

    tenant: TenantId
    version: int
    master_key_id: str
    created_at: float
    retired_at: float | None
    wrapped_size: int
    wrapped_sha256: str


class DataKeyStore:
    """Create, unwrap, rotate, re-wrap and shred tenants' data keys.

    ``conn`` is a connection to the control database; ``keyring`` holds the master keys.
    Implements the ``DataKeySource`` protocol that :class:`~.store.SecretStore` reads from.
    """

    def __init__(self, conn: aiosqlite.Connection, keyring: Keyring) -> None:
        self._conn = conn
        self._keyring = keyring
        self._cache: dict[tuple[TenantId, int], DataKey] = {}
        # Serialises this process's writers so version numbers are read and used atomically
        # even when the caller's transaction (commit=False) began before our SELECT.
        self._lock = asyncio.Lock()

    @property
    def keyring(self) -> Keyring:
        """The master keys in use for unwrapping and wrapping."""
        return self._keyring

    def use_keyring(self, keyring: Keyring) -> None:
        """Adopt a reloaded keyring (e.g. after another process rotated the key file).

        Cached data keys stay valid: a data key does not change when it is re-wrapped.
        """
        self._keyring = keyring

    async def ensure_schema(self) -> None:
        """Create ``_ht_data_keys`` and its indexes if missing (idempotent; commits)."""
        async with write_transaction(self._conn, commit=True):
            for statement in _SCHEMA:
                await self._conn.execute(statement)

    def _forget(self, tenant: TenantId | None = None) -> None:
        if tenant is None:
            self._cache.clear()
        else:
            for cache_key in [k for k in self._cache if k[0] == tenant]:
                del self._cache[cache_key]

    async def _current_version(self, tenant: TenantId) -> int | None:
        async with self._conn.execute(
            "SELECT key_version FROM _ht_data_keys WHERE tenant_id = ? AND retired_at IS NULL",
            (tenant,),
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else int(row[0])

    async def _insert(self, tenant: TenantId, version: int, now: float) -> None:
        data_key = new_data_key(tenant, version)
        master = self._keyring.current
        await self._conn.execute(
            "INSERT INTO _ht_data_keys (tenant_id, key_version, wrapped_key, master_key_id,"
            " created_at, retired_at) VALUES (?, ?, ?, ?, ?, NULL)",
            (tenant, version, wrap_data_key(master, data_key), master.key_id, now),
        )

    async def create_tenant_key(
        self, tenant: TenantId, *, now: float, commit: bool = True
    ) -> DataKey:
        """Create version 1 of ``tenant``'s data key, wrapped by the current master key.

        Call it in the tenant-creation transaction. :class:`DataKeyError` if the tenant
        already has keys.
        """
        async with self._lock, write_transaction(self._conn, commit=commit):
            async with self._conn.execute(
                "SELECT 1 FROM _ht_data_keys WHERE tenant_id = ? LIMIT 1", (tenant,)
            ) as cursor:
                if await cursor.fetchone() is not None:
                    raise DataKeyError(f"tenant {tenant!r} already has data keys")
            self._forget(tenant)
            await self._insert(tenant, 1, now)
        return await self._load(tenant, 1, cache=commit)

    async def _load(self, tenant: TenantId, version: int, *, cache: bool) -> DataKey:
        cached = self._cache.get((tenant, version))
        if cached is not None:
            return cached
        async with self._conn.execute(
            "SELECT wrapped_key FROM _ht_data_keys WHERE tenant_id = ? AND key_version = ?",
            (tenant, version),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise DataKeyError(f"tenant {tenant!r} has no data key version {version}")
        wrapped = bytes(row[0])
        master = self._keyring.get(key_id_of(wrapped))
        data_key = unwrap_data_key(master, wrapped, tenant=tenant, version=version)
        # Only committed state may be cached: a row read inside an open transaction could
        # still be rolled back.
        if cache and not self._conn.in_transaction:
            self._cache[(tenant, version)] = data_key
        return data_key

    async def current_key(self, tenant: TenantId) -> DataKey:
        """The tenant's current data key (for encrypting). :class:`DataKeyError` if none."""
        version = await self._current_version(tenant)
        if version is None:
            raise DataKeyError(f"tenant {tenant!r} has no data key (never created or deleted)")
        return await self._load(tenant, version, cache=True)

    async def get_key(self, tenant: TenantId, version: int) -> DataKey:
        """A specific version (for decrypting), current or retired."""
        return await self._load(tenant, version, cache=True)

    async def rotate_tenant_key(
        self, tenant: TenantId, *, now: float, commit: bool = True
    ) -> DataKey:
        """Retire the current data key and create the next version; return the new key.

        The old version stays (retired) so existing secrets keep decrypting. Then call
        ``SecretStore.reencrypt_all`` and, once it has committed,
        :meth:`destroy_retired_keys`.
        """
        async with self._lock, write_transaction(self._conn, commit=commit):
            version = await self._current_version(tenant)
            if version is None:
                raise DataKeyError(f"tenant {tenant!r} has no data key to rotate")
            async with self._conn.execute(
                "SELECT MAX(key_version) FROM _ht_data_keys WHERE tenant_id = ?", (tenant,)
            ) as cursor:
                row = await cursor.fetchone()
            next_version = int(row[0]) + 1 if row is not None else version + 1
            self._forget(tenant)
            await self._conn.execute(
                "UPDATE _ht_data_keys SET retired_at = ? WHERE tenant_id = ? AND key_version = ?",
                (now, tenant, version),
            )
            await self._insert(tenant, next_version, now)
        return await self._load(tenant, next_version, cache=commit)

    async def destroy_retired_keys(
        self, tenant: TenantId, *, keep: Collection[int], commit: bool = True
    ) -> list[DataKeyRecord]:
        """Shred retired versions not in ``keep`` (``SecretStore.key_versions_in_use()``).

        Secrets still encrypted under a destroyed version would become unreadable, hence
        the ``keep`` set. Returns what was destroyed. Run :meth:`scrub_files` afterwards.
        """
        async with self._lock, write_transaction(self._conn, commit=commit):
            records = [r for r in await self.list_keys(tenant) if r.retired_at is not None]
            doomed = [r for r in records if r.version not in keep]
            self._forget(tenant)
            async with secure_delete(self._conn):
                for record in doomed:
                    await self._conn.execute(
                        "DELETE FROM _ht_data_keys WHERE tenant_id = ? AND key_version = ?",
                        (tenant, record.version),
                    )
        return doomed

    async def rewrap_all(self, keyring: Keyring | None = None, *, commit: bool = True) -> int:
        """Re-wrap every data key not under the current master key; return how many.

        Use after a master rotation: pass the new keyring (it holds the old keys too), which
        this store adopts. Secrets are not touched: their data keys do not change.
        """
        async with self._lock, write_transaction(self._conn, commit=commit):
            if keyring is not None:
                self._keyring = keyring
            self._forget()
            current = self._keyring.current
            async with self._conn.execute(
                "SELECT tenant_id, key_version, wrapped_key FROM _ht_data_keys"
                " WHERE master_key_id != ?",
                (current.key_id,),
            ) as cursor:
                rows = list(await cursor.fetchall())
            async with secure_delete(self._conn):
                for tenant_id, version, wrapped in rows:
                    tenant = TenantId(str(tenant_id))
                    wrapped = bytes(wrapped)
                    old_master = self._keyring.get(key_id_of(wrapped))
                    data_key = unwrap_data_key(
                        old_master, wrapped, tenant=tenant, version=int(version)
                    )
                    await self._conn.execute(
                        "UPDATE _ht_data_keys SET wrapped_key = ?, master_key_id = ?"
                        " WHERE tenant_id = ? AND key_version = ?",
                        (wrap_data_key(current, data_key), current.key_id, tenant, version),
                    )
        return len(rows)

    async def delete_tenant_keys(
        self, tenant: TenantId, *, commit: bool = True
    ) -> list[DataKeyRecord]:
        """Crypto-shred: delete every data key of ``tenant``; return what was destroyed.

        Once committed, no copy of the tenant's encrypted secrets (database file, backup,
        export) can be decrypted with the live control database. Run :meth:`scrub_files`
        after the commit so no page image of the wrapped keys survives in the WAL.
        """
        async with self._lock, write_transaction(self._conn, commit=commit):
            records = await self.list_keys(tenant)
            self._forget(tenant)
            async with secure_delete(self._conn):
                await self._conn.execute("DELETE FROM _ht_data_keys WHERE tenant_id = ?", (tenant,))
        return records

    async def list_keys(self, tenant: TenantId) -> list[DataKeyRecord]:
        """Metadata of every stored version of ``tenant``'s data key, oldest first."""
        async with self._conn.execute(
            "SELECT key_version, master_key_id, created_at, retired_at, wrapped_key"
            " FROM _ht_data_keys WHERE tenant_id = ? ORDER BY key_version",
            (tenant,),
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            DataKeyRecord(
                tenant=tenant,
                version=int(version),
                master_key_id=str(master_key_id),
                created_at=float(created_at),
                retired_at=None if retired_at is None else float(retired_at),
                wrapped_size=len(wrapped),
                wrapped_sha256=hashlib.sha256(bytes(wrapped)).hexdigest(),
            )
            for version, master_key_id, created_at, retired_at, wrapped in rows
        ]

    async def master_keys_in_use(self) -> set[str]:
        """Ids of master keys that still wrap at least one data key."""
        async with self._conn.execute("SELECT DISTINCT master_key_id FROM _ht_data_keys") as cursor:
            return {str(row[0]) for row in await cursor.fetchall()}

    async def scrub_files(self) -> bool:
        """Checkpoint and truncate the control database's WAL after a shredding commit.

        Returns ``False`` if a reader blocked the checkpoint (retry later).
        """
        if self._conn.in_transaction:
            raise SecretsUsageError("scrub_files must run after the commit")
        return await truncate_wal(self._conn)
