"""The lifecycle service of one data directory: master keys, data keys, provisioning.

One :class:`Lifecycle` per process (the hub, or a CLI command). It owns a connection of its
own to ``control.db`` for the data key store (``_ht_data_keys``), so its transactions never
interleave with the control plane's, and a :class:`~.keysource.KeySource` that re-reads the
key file when another process rotated it.

With no master keys configured, tables still work: secret operations raise
:class:`SecretsUnavailable` and new tenants get their data key later (on first use of
secrets once a keyring exists; see :func:`~.provision.ensure_data_key`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

import aiosqlite

from server.auth.apikeys import IssuedKey
from server.auth.principal import Plan, TenantId
from server.control.plane import ControlPlane
from server.control.tenants import TenantRecord
from server.lifecycle.controldb import open_control_connection, shred_only_keyring
from server.lifecycle.delete import CloseStore, DeletionResult, delete_tenant
from server.lifecycle.keysource import KeySource
from server.lifecycle.provision import Populate, ensure_data_key, provision_tenant
from server.secrets.datakeys import DataKeyStore
from server.secrets.errors import DataKeyError, SecretsError
from server.secrets.keyring import Keyring
from server.store.schema import Durability


class SecretsUnavailable(SecretsError):
    """No master keys are configured, so secrets cannot be stored or read."""


class Lifecycle:
    """Master keys, tenant data keys and provisioning for one data directory."""

    def __init__(
        self,
        data_dir: Path,
        control: ControlPlane,
        source: KeySource,
        conn: aiosqlite.Connection,
        datakeys: DataKeyStore,
        durability: Durability,
    ) -> None:
        """Use :meth:`open`."""
        self.data_dir = data_dir
        self.control = control
        self.source = source
        self.conn = conn
        self._datakeys = datakeys
        self._configured = source.keyring() is not None
        self.durability = durability
        self._keyed: set[str] = set()
        self.schema_ready: set[str] = set()
        """Tenants whose database is known to have the secrets and audit tables."""

    @classmethod
    async def open(
        cls,
        data_dir: Path,
        control: ControlPlane,
        *,
        environ: Mapping[str, str] | None = None,
        durability: Durability = Durability.PROCESS,
    ) -> Lifecycle:
        """Load the master keys (raising :class:`KeyringError` for a bad or unsafe source)
        and open the data key store."""
        source = KeySource(data_dir, os.environ if environ is None else environ)
        ring = source.keyring()
        conn = await open_control_connection(control.path)
        try:
            datakeys = DataKeyStore(conn, ring if ring is not None else shred_only_keyring())
            await datakeys.ensure_schema()
        except BaseException:
            await conn.close()
            raise
        return cls(data_dir, control, source, conn, datakeys, durability)

    async def close(self) -> None:
        """Close the data key connection (idempotent)."""
        await self.conn.close()

    def keyring(self) -> Keyring | None:
        """The current master keys (re-read when the key file changed), or ``None``."""
        ring = self.source.keyring()
        self._configured = ring is not None
        if ring is not None and ring is not self._datakeys.keyring:
            self._datakeys.use_keyring(ring)
        return ring

    def require_keyring(self) -> Keyring:
        """The master keys, or :class:`SecretsUnavailable`."""
        ring = self.keyring()
        if ring is None:
            raise SecretsUnavailable("no master keys are configured on this server")
        return ring

    @property
    def datakeys(self) -> DataKeyStore:
        """The data key store (its keyring may be a throwaway one: see :meth:`keyring`)."""
        return self._datakeys

    async def keys_for(self, tenant: TenantId, *, now: float) -> DataKeyStore:
        """The data key store, once ``tenant`` is known to have a data key.

        A live tenant created before master keys were configured gets one now.
        """
        ring = self.require_keyring()
        if tenant not in self._keyed:
            with contextlib.suppress(DataKeyError):  # created concurrently: fine
                await ensure_data_key(self.conn, ring, tenant, now=now)
            self._keyed.add(tenant)
        return self._datakeys

    async def create_tenant(
        self,
        name: str,
        plan: Plan = Plan.FREE,
        *,
        now: float,
        actor: str = "system",
        populate: Populate | None = None,
    ) -> tuple[TenantRecord, IssuedKey]:
        """Provision a tenant (database, schema, data key, admin key, audit), atomically."""
        return await provision_tenant(
            self.control,
            self.data_dir,
            name,
            plan,
            keyring=self.keyring(),
            now=now,
            actor=actor,
            durability=self.durability,
            populate=populate,
        )

    async def delete_tenant(
        self,
        tenant: TenantId,
        *,
        now: float,
        actor: str,
        close_store: CloseStore | None = None,
        certificate_out: Path | None = None,
    ) -> DeletionResult:
        """Delete a tenant with crypto-shredding and a signed certificate
        (:func:`server.lifecycle.delete.delete_tenant`)."""
        self._keyed.discard(tenant)
        self.schema_ready.discard(tenant)
        return await delete_tenant(
            self.control,
            self.data_dir,
            tenant,
            keyring=self.keyring(),
            now=now,
            actor=actor,
            close_store=close_store,
            certificate_out=certificate_out,
        )
