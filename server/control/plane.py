"""The control plane: ``control.db`` and the ideas kept in it, composed.

How it fits together
--------------------
:meth:`ControlPlane.open` opens control.db (:class:`~server.control.db.ControlDb`: one
connection, ``BEGIN IMMEDIATE`` write transactions under a lock) and builds on it:

- :class:`~server.control.revocations.Revocations`: revoking transactions (the change, its
  ``revocation_log`` row, then the bus), and the watcher that republishes other processes'
  revocations;
- :class:`~server.control.keys.Keys`: API keys issued, listed, narrowed, rotated, revoked;
- :class:`~server.control.tenancy.Tenancy`: signup with the first admin key, plan
  changes, deletion, incident containment (tenant records and reads:
  :mod:`server.control.tenants`);
- :class:`~server.control.authentication.Authentication`: API key or JWT to
  :class:`Principal` at the handshake, and which verified credentials died since.

Each change commits with its control audit entry (:mod:`server.control.audit_entries`,
written through :mod:`server.audit`, which knows nothing of this package). The methods
below delegate to those parts; they are the surface the hub, the CLI and the lifecycle
workflows use.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Coroutine, Iterable
from pathlib import Path
from typing import Any

import aiosqlite

from server.audit.events import SYSTEM
from server.auth import apikeys
from server.auth.apikeys import IssuedKey, KeyRecord
from server.auth.errors import AuthConfigError, AuthError, AuthFailure
from server.auth.jwt import JwtVerifier
from server.auth.principal import KeyId, Plan, Principal, Scope, TenantId
from server.auth.revocation import MemoryRevocationBus, RevocationBus
from server.control.authentication import LAST_USED_INTERVAL, Authentication
from server.control.db import CONTROL_DB_NAME, ControlDb
from server.control.keys import MAX_TABLE_ID_LENGTH, MAX_TABLES_PER_KEY, Keys
from server.control.revocations import Revocations
from server.control.tenancy import Tenancy, TenantHook
from server.control.tenants import TenantRecord, read_tenant, read_tenants
from server.control.watch import ControlDbWatcher

__all__ = [
    "CONTROL_DB_NAME",
    "LAST_USED_INTERVAL",
    "MAX_TABLES_PER_KEY",
    "MAX_TABLE_ID_LENGTH",
    "AuthConfigError",
    "AuthError",
    "AuthFailure",
    "ControlPlane",
    "IssuedKey",
    "KeyRecord",
    "TenantHook",
    "TenantRecord",
]


class ControlPlane:
    """Tenants and API keys in ``control.db``; authenticates credentials at the handshake.

    Create with :meth:`open`; always :meth:`close`. ``pepper`` (>= 32 bytes, from config,
    never stored) keys the API key hashes. ``environment`` (``live``/``test``) is the only
    key prefix this server accepts and the one it issues.
    """

    def __init__(
        self,
        db: ControlDb,
        *,
        pepper: bytes,
        environment: str,
        bus: RevocationBus,
        owns_bus: bool,
        jwt: JwtVerifier | None,
    ) -> None:
        """Use :meth:`open`."""
        self.db = db
        self.revocations = Revocations(db, bus, owns_bus=owns_bus)
        self.keys = Keys(db, self.revocations, pepper=pepper, environment=environment)
        self.tenancy = Tenancy(db, self.keys, self.revocations)
        self.authentication = Authentication(db, pepper=pepper, environment=environment, jwt=jwt)
        self._environment = environment
        self._closed = False

    @classmethod
    async def open(
        cls,
        data_dir: Path,
        *,
        pepper: bytes,
        environment: str = "live",
        bus: RevocationBus | None = None,
        jwt: JwtVerifier | None = None,
        watch: bool = True,
        watch_interval: float = 0.05,
    ) -> ControlPlane:
        """Open (creating if needed) ``data_dir/control.db``.

        ``bus`` receives every revocation (a private :class:`MemoryRevocationBus` when
        omitted; it is then closed with the plane). ``jwt`` enables
        :meth:`authenticate_jwt`. ``watch`` starts the :class:`ControlDbWatcher` so that
        revocations committed by other processes (the CLI) are published on ``bus`` within
        ``watch_interval``; short-lived tools (the CLI itself) pass ``watch=False``.
        """
        apikeys.check_pepper(pepper)
        apikeys.check_environment(environment)
        db = await ControlDb.open(data_dir)
        plane = cls(
            db,
            pepper=pepper,
            environment=environment,
            bus=bus if bus is not None else MemoryRevocationBus(),
            owns_bus=bus is None,
            jwt=jwt,
        )
        try:
            plane.authentication.open()
            if watch:
                await plane.revocations.watch(watch_interval)
        except BaseException:
            await plane.close()
            raise
        return plane

    @property
    def path(self) -> Path:
        """The ``control.db`` file."""
        return self.db.path

    @property
    def bus(self) -> RevocationBus:
        """The bus revocations are published on; subscribe here to close sockets."""
        return self.revocations.bus

    @property
    def environment(self) -> str:
        """``live`` or ``test``: the key prefix accepted and issued."""
        return self._environment

    @property
    def watcher(self) -> ControlDbWatcher | None:
        """The cross-process revocation watcher, when started by :meth:`open`."""
        return self.revocations.watcher

    async def drain(self) -> None:
        """Wait for pending background writes (``last_used_at``)."""
        await self.authentication.drain()

    async def close(self) -> None:
        """Stop the watcher, finish background writes, close the database (idempotent)."""
        if self._closed:
            return
        self._closed = True
        await self.revocations.stop_watching()
        await self.authentication.close()
        await self.db.close()
        await self.revocations.close_bus()

    # -- the connection ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction on the control connection, under its lock.

        For modules that must change their own control tables atomically with ours.
        Commits on success, rolls back on any error.
        """
        if self._closed:
            raise RuntimeError("control plane is closed")
        async with self.db.transaction() as conn:
            yield conn

    async def ping(self) -> None:
        """One trivial read: raises if control.db is unusable (for ``/readyz``)."""
        if self._closed:
            raise RuntimeError("control plane is closed")
        await self.db.fetchall("SELECT 1")

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Rows of one read statement on the control connection (no write lock taken).

        For modules that read their own control tables; ``sql`` must be a constant.
        """
        if self._closed:
            raise RuntimeError("control plane is closed")
        return await self.db.fetchall(sql, params)

    # -- tenants (server.control.tenancy, .tenants) ---------------------------------------

    async def create_tenant(
        self,
        name: str,
        plan: Plan = Plan.FREE,
        *,
        now: float,
        region: str = "",
        actor: str = SYSTEM,
        tenant_id: TenantId | None = None,
        extra: TenantHook | None = None,
    ) -> tuple[TenantRecord, IssuedKey]:
        """Create a tenant and its first admin key (:meth:`Tenancy.create`)."""
        return await self.tenancy.create(
            name, plan, now=now, region=region, actor=actor, tenant_id=tenant_id, extra=extra
        )

    async def get_tenant(self, tenant: TenantId) -> TenantRecord | None:
        """The tenant, deleted or not; ``None`` when it never existed."""
        return await read_tenant(self.db.conn, tenant)

    async def list_tenants(self, *, include_deleted: bool = False) -> list[TenantRecord]:
        """Tenants by creation time (deleted ones only on request)."""
        return await read_tenants(self.db.conn, include_deleted=include_deleted)

    async def set_plan(self, tenant: TenantId, plan: Plan) -> TenantRecord:
        """Change a live tenant's plan (:meth:`Tenancy.set_plan`)."""
        return await self.tenancy.set_plan(tenant, plan)

    async def delete_tenant(
        self,
        tenant: TenantId,
        *,
        now: float,
        actor: str = SYSTEM,
        extra: TenantHook | None = None,
    ) -> TenantRecord:
        """Mark the tenant deleted and revoke all its keys (:meth:`Tenancy.delete`)."""
        return await self.tenancy.delete(tenant, now=now, actor=actor, extra=extra)

    async def revoke_tenant_keys(
        self, tenant: TenantId, *, now: float, actor: str, reason: str, reissue_by: str | None
    ) -> tuple[list[KeyRecord], IssuedKey | None]:
        """Take every credential of a tenant away (:meth:`Tenancy.contain`)."""
        return await self.tenancy.contain(
            tenant, now=now, actor=actor, reason=reason, reissue_by=reissue_by
        )

    # -- keys (server.control.keys) ------------------------------------------------------

    async def create_key(
        self,
        tenant: TenantId,
        name: str,
        scopes: Iterable[Scope | str],
        *,
        tables: Iterable[str] | None = None,
        expires_at: float | None = None,
        created_by: str,
        now: float,
        rate: int | None = None,
    ) -> IssuedKey:
        """Create an API key for a live tenant (:meth:`Keys.create`)."""
        return await self.keys.create(
            tenant,
            name,
            scopes,
            tables=tables,
            expires_at=expires_at,
            created_by=created_by,
            now=now,
            rate=rate,
        )

    async def get_key(self, key_id: KeyId) -> KeyRecord | None:
        """The key's record (never its hash), or ``None``."""
        return await self.keys.get(key_id)

    async def list_keys(self, tenant: TenantId) -> list[KeyRecord]:
        """Every key of the tenant, revoked ones included, oldest first. Never the hash."""
        return await self.keys.of_tenant(tenant)

    async def revoke_key(self, key_id: KeyId, *, now: float, actor: str = SYSTEM) -> KeyRecord:
        """Revoke the key and publish a ``CREDENTIAL`` event (:meth:`Keys.revoke`)."""
        return await self.keys.revoke(key_id, now=now, actor=actor)

    async def update_key_scopes(
        self,
        key_id: KeyId,
        scopes: Iterable[Scope | str],
        *,
        now: float,
        actor: str = SYSTEM,
    ) -> KeyRecord:
        """Narrow a live key to ``scopes`` (:meth:`Keys.narrow`)."""
        return await self.keys.narrow(key_id, scopes, now=now, actor=actor)

    async def rotate_key(
        self, key_id: KeyId, *, now: float, created_by: str | None = None
    ) -> IssuedKey:
        """Replace a key by a new one with the same grants (:meth:`Keys.rotate`)."""
        return await self.keys.rotate(key_id, now=now, created_by=created_by)

    async def grants_of(
        self, key_ids: Iterable[str]
    ) -> dict[str, tuple[frozenset[Scope], frozenset[str] | None]]:
        """The current scopes and table allowlist of the given API keys (:meth:`Keys.grants`)."""
        return await self.keys.grants(key_ids)

    # -- authentication (server.control.authentication) ----------------------------------

    def authenticate(self, token: str | None, *, now: float) -> Coroutine[Any, Any, Principal]:
        """Dispatch on the credential's shape: ``ht_…`` API key, else a JWT (to await:
        the authenticating method's own coroutine)."""
        return self.authentication.authenticate(token, now=now)

    async def authenticate_api_key(self, token: str | None, *, now: float) -> Principal:
        """The principal for an API key, or :class:`AuthError`."""
        return await self.authentication.authenticate_api_key(token, now=now)

    async def authenticate_jwt(self, token: str | None, *, now: float) -> Principal:
        """The principal for a JWT access token whose tenant exists and is not deleted."""
        return await self.authentication.authenticate_jwt(token, now=now)

    async def credential_is_live(self, credential_id: str, *, now: float) -> bool:
        """Whether a credential verified earlier is still acceptable at ``now``."""
        dead = await self.authentication.dead_credentials([credential_id], now=now)
        return credential_id not in dead

    async def dead_credentials(self, credential_ids: Iterable[str], *, now: float) -> set[str]:
        """The subset of ``credential_ids`` that is no longer live (batched reads)."""
        return await self.authentication.dead_credentials(credential_ids, now=now)
