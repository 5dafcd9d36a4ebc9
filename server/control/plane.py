"""The control plane: tenants, API keys, and authentication at the WebSocket handshake.

How it works
------------
``ControlPlane.open`` opens ``data_dir/control.db`` (WAL, ``synchronous=FULL``: revocations
must survive a crash) on one aiosqlite connection in autocommit mode; every write is an
explicit ``BEGIN IMMEDIATE`` transaction under an asyncio lock, so coroutines never share a
half-done transaction. Other modules keep their own tables in the same file through their
own connections (or :meth:`ControlPlane.transaction`).

Authentication of an API key costs one indexed read: shape, checksum and environment are
checked first without the database (:func:`server.auth.apikeys.parse_key`), then the row is
fetched by key id and the peppered hash compared in constant time. ``last_used_at`` is
written in the background at most once per :data:`LAST_USED_INTERVAL` per key (the row just
read says when it was last written, so this holds across processes too).

Revocation (revoke, rotate, tenant deletion) commits the change and a ``revocation_log`` row
in one transaction, then publishes on the bus. The :class:`~server.control.watch.
ControlDbWatcher` started by ``open`` republishes log rows written by *other* processes.
There is no verified-key cache: the read is cheap, and a cache would be one more place a
revoked key could survive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiosqlite

from protocol.identity import MAX_KEY_RATE
from server.alerts.schema import ensure_schema as ensure_alert_schema
from server.audit import events as audit_events
from server.audit.chain import AuditEntry
from server.audit.log import ensure_schema as ensure_audit_schema
from server.auth import apikeys
from server.auth.apikeys import IssuedKey, KeyRecord
from server.auth.errors import AuthConfigError, AuthError, AuthFailure
from server.auth.ids import is_key_id, is_tenant_id, new_tenant_id
from server.auth.jwt import JwtVerifier
from server.auth.principal import ALL_SCOPES, KeyId, Plan, Principal, Scope, TenantId
from server.auth.revocation import (
    MemoryRevocationBus,
    RevocationBus,
    RevocationEvent,
    RevocationKind,
)
from server.control.errors import (
    InvalidInput,
    KeyNotRotatable,
    UnknownKey,
    UnknownTenant,
    WouldWiden,
)
from server.control.keycache import CachedKey, ControlReadCache
from server.control.notify import poke_all
from server.control.schema import ensure_schema
from server.control.tenants import TenantRecord, clean_name
from server.control.watch import ControlDbWatcher
from server.private import private_database, private_directory

__all__ = [
    "LAST_USED_INTERVAL",
    "AuthConfigError",
    "AuthError",
    "AuthFailure",
    "ControlPlane",
    "IssuedKey",
    "KeyRecord",
    "TenantRecord",
]

log = logging.getLogger(__name__)

#: ``last_used_at`` is rewritten at most this often per key (seconds).
LAST_USED_INTERVAL = 60.0
MAX_TABLES_PER_KEY = 1000
MAX_TABLE_ID_LENGTH = 128
CONTROL_DB_NAME = "control.db"


def _prepare_files(data_dir: Path, path: Path) -> None:
    # control.db holds every tenant's keys (hashed) and the control audit log: owner only,
    # like the tenant databases, its -wal and -shm included.
    private_directory(data_dir)
    private_database(path)


_KEY_COLUMNS = (
    "k.id, k.tenant_id, k.name, k.environment, k.scopes, k.tables, k.created_by,"
    " k.created_at, k.expires_at, k.revoked_at, k.last_used_at, k.replaced_by, k.rate"
)
TenantHook = Callable[[aiosqlite.Connection, TenantRecord], Awaitable[None]]
"""Awaited inside a tenant create/delete transaction on the control connection."""

# A syntactically valid hash to compare against when the key id is unknown, so an unknown
# id and a wrong secret take the same time.
_DUMMY_HASH = bytes(32)


def _key_record(row: Any) -> KeyRecord:
    tables = json.loads(row[5]) if row[5] is not None else None
    return KeyRecord(
        id=KeyId(row[0]),
        tenant=TenantId(row[1]),
        name=row[2],
        environment=row[3],
        scopes=frozenset(Scope(s) for s in json.loads(row[4])),
        tables=frozenset(tables) if tables is not None else None,
        created_by=row[6],
        created_at=row[7],
        expires_at=row[8],
        revoked_at=row[9],
        last_used_at=row[10],
        replaced_by=KeyId(row[11]) if row[11] is not None else None,
        rate=row[12],
    )


def _tenant_record(row: Any) -> TenantRecord:
    return TenantRecord(
        id=TenantId(row[0]),
        name=row[1],
        plan=Plan(row[2]),
        created_at=row[3],
        deleted_at=row[4],
        region=row[5],
    )


class ControlPlane:
    """Tenants and API keys in ``control.db``; authenticates credentials at the handshake.

    Create with :meth:`open`; always :meth:`close`. ``pepper`` (>= 32 bytes, from config,
    never stored) keys the API key hashes. ``environment`` (``live``/``test``) is the only
    key prefix this server accepts and the one it issues.
    """

    def __init__(
        self,
        conn: aiosqlite.Connection,
        path: Path,
        *,
        pepper: bytes,
        environment: str,
        bus: RevocationBus,
        owns_bus: bool,
        jwt: JwtVerifier | None,
    ) -> None:
        """Use :meth:`open`."""
        self._conn = conn
        self._path = path
        self._pepper = pepper
        self._environment = environment
        self._bus = bus
        self._owns_bus = owns_bus
        self._jwt = jwt
        self._reads = ControlReadCache(path)
        self._lock = asyncio.Lock()
        self._watcher: ControlDbWatcher | None = None
        # revocation_log seqs this process published itself; the watcher skips them.
        self._own_seqs: set[int] = set()
        self._touching: set[KeyId] = set()
        self._background: set[asyncio.Task[None]] = set()
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
        path = data_dir / CONTROL_DB_NAME
        await asyncio.to_thread(_prepare_files, data_dir, path)
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=FULL")
            await conn.execute("PRAGMA foreign_keys=ON")
            # The CLI may hold the write lock briefly; wait rather than fail.
            await conn.execute("PRAGMA busy_timeout=5000")
            await ensure_schema(conn)
            await ensure_audit_schema(conn)  # the control audit log (docs/audit.md)
            await ensure_alert_schema(conn)  # its alerting entries fill the alert outbox
        except BaseException:
            await conn.close()
            raise
        plane = cls(
            conn,
            path,
            pepper=pepper,
            environment=environment,
            bus=bus if bus is not None else MemoryRevocationBus(),
            owns_bus=bus is None,
            jwt=jwt,
        )
        try:
            plane._reads.open()
        except BaseException:
            await plane.close()
            raise
        if watch:
            plane._watcher = ControlDbWatcher(
                path, plane._bus, interval=watch_interval, skip=plane._is_own_seq
            )
            try:
                await plane._watcher.start()
            except BaseException:
                await plane.close()
                raise
        return plane

    @property
    def path(self) -> Path:
        """The ``control.db`` file."""
        return self._path

    @property
    def bus(self) -> RevocationBus:
        """The bus revocations are published on; subscribe here to close sockets."""
        return self._bus

    @property
    def environment(self) -> str:
        """``live`` or ``test``: the key prefix accepted and issued."""
        return self._environment

    @property
    def watcher(self) -> ControlDbWatcher | None:
        """The cross-process revocation watcher, when started by :meth:`open`."""
        return self._watcher

    async def drain(self) -> None:
        """Wait for pending background writes (``last_used_at``)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def close(self) -> None:
        """Stop the watcher, finish background writes, close the database (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._watcher is not None:
            await self._watcher.stop()
        await self.drain()
        self._reads.close()
        await self._conn.close()
        if self._owns_bus:
            await self._bus.close()

    # -- transactions -------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction on the control connection, under its lock.

        For modules that must change their own control tables atomically with ours.
        Commits on success, rolls back on any error.
        """
        if self._closed:
            raise RuntimeError("control plane is closed")
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._conn.rollback()
                raise
            await self._conn.commit()

    async def _audit(self, entry: AuditEntry) -> None:
        """Append a control audit entry inside the open transaction (fails it on error)."""
        await audit_events.audit_control_event(self._conn, entry)

    async def ping(self) -> None:
        """One trivial read: raises if control.db is unusable (for ``/readyz``)."""
        if self._closed:
            raise RuntimeError("control plane is closed")
        async with self._conn.execute("SELECT 1") as cur:
            await cur.fetchone()

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Rows of one read statement on the control connection (no write lock taken).

        For modules that read their own control tables; ``sql`` must be a constant.
        """
        if self._closed:
            raise RuntimeError("control plane is closed")
        async with self._conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    def _is_own_seq(self, seq: int) -> bool:
        if seq in self._own_seqs:
            self._own_seqs.discard(seq)
            return True
        return False

    async def _log_revocation(self, event: RevocationEvent, pending: list[int]) -> None:
        cursor = await self._conn.execute(
            "INSERT INTO revocation_log (kind, tenant_id, credential_id, reason, at)"
            " VALUES (?, ?, ?, ?, ?)",
            (event.kind.value, event.tenant, event.credential_id, event.reason, event.at),
        )
        if cursor.lastrowid is not None and self._watcher is not None:
            # Registered before the commit so the watcher can never see it unregistered;
            # removed again by the caller if the transaction rolls back.
            self._own_seqs.add(cursor.lastrowid)
            pending.append(cursor.lastrowid)

    async def _publish(self, events: Iterable[RevocationEvent]) -> None:
        for event in events:
            try:
                await self._bus.publish(event)
            except Exception as exc:
                # The revocation is committed and every new handshake refuses the key; open
                # sockets elsewhere are closed by the periodic recheck. Do not fail the admin.
                log.error("revocation publish failed (%s)", type(exc).__name__)

    @contextlib.asynccontextmanager
    async def _revoking(self) -> AsyncIterator[list[RevocationEvent]]:
        """A write transaction that logs and then publishes the events it collects."""
        events: list[RevocationEvent] = []
        pending: list[int] = []
        try:
            async with self.transaction():
                yield events
                for event in events:
                    await self._log_revocation(event, pending)
        except BaseException:
            self._own_seqs.difference_update(pending)
            raise
        await self._publish(events)
        if events and self._watcher is None:
            # No watcher here (the CLI): wake the running hubs so they read the log now.
            await asyncio.to_thread(poke_all, self._path.parent)

    # -- tenants -------------------------------------------------------------------------

    async def create_tenant(
        self,
        name: str,
        plan: Plan = Plan.FREE,
        *,
        now: float,
        region: str = "",
        actor: str = audit_events.SYSTEM,
        tenant_id: TenantId | None = None,
        extra: TenantHook | None = None,
    ) -> tuple[TenantRecord, IssuedKey]:
        """Create a tenant and its first admin key (every scope), in one transaction
        with their audit entries (``actor``: who signed up, for the audit log).

        ``tenant_id`` (server-made) and ``extra`` (awaited inside the transaction with the
        connection and the new tenant) let ``server.lifecycle.provision`` add the tenant's
        database and data key to the same all-or-nothing signup.
        """
        name = clean_name(name, what="tenant name")
        plan = Plan(plan)
        if region:
            region = clean_name(region, what="region", max_length=32)
        for _ in range(1 if tenant_id is not None else 3):
            tenant = TenantRecord(
                id=tenant_id or new_tenant_id(), name=name, plan=plan, created_at=now, region=region
            )
            try:
                async with self.transaction():
                    await self._conn.execute(
                        "INSERT INTO tenants (id, name, plan, region, created_at, deleted_at)"
                        " VALUES (?, ?, ?, ?, ?, NULL)",
                        (tenant.id, tenant.name, tenant.plan.value, region, now),
                    )
                    issued = await self._insert_key(
                        tenant.id,
                        "admin",
                        ALL_SCOPES,
                        tables=None,
                        expires_at=None,
                        created_by="system:create_tenant",
                        now=now,
                    )
                    await self._audit(audit_events.tenant_created(tenant, actor))
                    await self._audit(audit_events.key_created(issued.record, actor))
                    if extra is not None:
                        await extra(self._conn, tenant)
            except sqlite3.IntegrityError:
                if tenant_id is not None:
                    raise
                continue  # id collision (astronomically rare): draw again
            return tenant, issued
        raise RuntimeError("could not allocate a unique tenant id")

    async def get_tenant(self, tenant: TenantId) -> TenantRecord | None:
        """The tenant, deleted or not; ``None`` when it never existed."""
        if not is_tenant_id(tenant):
            return None
        async with self._conn.execute(
            "SELECT id, name, plan, created_at, deleted_at, region FROM tenants WHERE id = ?",
            (tenant,),
        ) as cur:
            row = await cur.fetchone()
        return _tenant_record(row) if row is not None else None

    async def list_tenants(self, *, include_deleted: bool = False) -> list[TenantRecord]:
        """Tenants by creation time (deleted ones only on request)."""
        sql = "SELECT id, name, plan, created_at, deleted_at, region FROM tenants"
        if not include_deleted:
            sql += " WHERE deleted_at IS NULL"
        async with self._conn.execute(sql + " ORDER BY created_at, id") as cur:
            rows = await cur.fetchall()
        return [_tenant_record(row) for row in rows]

    async def set_plan(self, tenant: TenantId, plan: Plan) -> TenantRecord:
        """Change a live tenant's plan (takes effect at each principal's next handshake).
        ``hypertab tenant plan`` records it as ``tenant.plan_changed``."""
        async with self.transaction():
            cur = await self._conn.execute(
                "UPDATE tenants SET plan = ? WHERE id = ? AND deleted_at IS NULL",
                (Plan(plan).value, tenant),
            )
            if cur.rowcount != 1:
                raise UnknownTenant(tenant)
        record = await self.get_tenant(tenant)
        assert record is not None
        return record

    async def delete_tenant(
        self,
        tenant: TenantId,
        *,
        now: float,
        actor: str = audit_events.SYSTEM,
        extra: TenantHook | None = None,
    ) -> TenantRecord:
        """Mark the tenant deleted and revoke all its keys; publishes a ``TENANT`` event.

        Idempotent. Removing the tenant's database, secrets and data keys is the job of the
        deletion workflow, which calls this first so no credential of the tenant works
        (``server.lifecycle.delete`` passes ``extra`` to shred the data keys in the same
        transaction).
        """
        async with self._revoking() as events:
            record = await self.get_tenant(tenant)
            if record is None:
                raise UnknownTenant(tenant)
            deleted_at = record.deleted_at if record.deleted_at is not None else now
            await self._conn.execute(
                "UPDATE tenants SET deleted_at = ? WHERE id = ?", (deleted_at, tenant)
            )
            await self._audit(audit_events.tenant_deleted(tenant, actor, now))
            await self._conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE tenant_id = ? AND revoked_at IS NULL",
                (now, tenant),
            )
            if extra is not None:
                await extra(self._conn, record)
            events.append(
                RevocationEvent(
                    kind=RevocationKind.TENANT, tenant=tenant, reason="tenant_deleted", at=now
                )
            )
        result = await self.get_tenant(tenant)
        assert result is not None
        return result

    # -- keys ----------------------------------------------------------------------------

    def _clean_tables(self, tables: Iterable[str] | None) -> frozenset[str] | None:
        if tables is None:
            return None
        if isinstance(tables, str):
            raise InvalidInput("tables must be a collection of table ids, not a string")
        cleaned = frozenset(
            clean_name(t, what="table id", max_length=MAX_TABLE_ID_LENGTH) for t in tables
        )
        if len(cleaned) > MAX_TABLES_PER_KEY:
            raise InvalidInput(f"at most {MAX_TABLES_PER_KEY} tables per key")
        return cleaned

    async def _insert_key(
        self,
        tenant: TenantId,
        name: str,
        scopes: frozenset[Scope],
        *,
        tables: frozenset[str] | None,
        expires_at: float | None,
        created_by: str,
        now: float,
        rate: int | None = None,
    ) -> IssuedKey:
        """Insert a key row; the caller holds the transaction."""
        key_id, secret, secret_hash = apikeys.issue(self._environment, self._pepper)
        record = KeyRecord(
            id=key_id,
            tenant=tenant,
            name=name,
            environment=self._environment,
            scopes=scopes,
            tables=tables,
            created_by=created_by,
            created_at=now,
            expires_at=expires_at,
            rate=rate,
        )
        await self._conn.execute(
            "INSERT INTO api_keys (id, tenant_id, name, environment, scopes, tables,"
            " secret_hash, created_by, created_at, expires_at, rate)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key_id,
                tenant,
                name,
                self._environment,
                json.dumps(sorted(s.value for s in scopes)),
                json.dumps(sorted(tables)) if tables is not None else None,
                secret_hash,
                created_by,
                now,
                expires_at,
                rate,
            ),
        )
        return IssuedKey(record=record, secret=secret)

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
        """Create an API key for a live tenant. ``IssuedKey.secret`` is shown once.

        ``tables`` restricts the key to those table ids (``None``: all tables); ``rate``
        caps the key at that many ops per minute when tighter than the plan (agent keys).
        ``created_by`` names the actor for the audit trail (e.g. a key id or ``cli:alice``).
        """
        name = clean_name(name, what="key name")
        created_by = clean_name(created_by, what="created_by", max_length=200)
        try:
            parsed_scopes = apikeys.parse_scopes(scopes)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        cleaned_tables = self._clean_tables(tables)
        if expires_at is not None and not expires_at > now:
            raise InvalidInput("expires_at must be in the future")
        if rate is not None and not 1 <= rate <= MAX_KEY_RATE:
            raise InvalidInput(f"rate must be 1 to {MAX_KEY_RATE} ops per minute")
        async with self.transaction():
            record = await self.get_tenant(tenant)
            if record is None or not record.active:
                raise UnknownTenant(tenant)
            issued = await self._insert_key(
                tenant,
                name,
                parsed_scopes,
                tables=cleaned_tables,
                expires_at=expires_at,
                created_by=created_by,
                now=now,
                rate=rate,
            )
            await self._audit(audit_events.key_created(issued.record, created_by))
            return issued

    async def get_key(self, key_id: KeyId) -> KeyRecord | None:
        """The key's record (never its hash), or ``None``."""
        if not is_key_id(key_id):
            return None
        async with self._conn.execute(
            f"SELECT {_KEY_COLUMNS} FROM api_keys k WHERE k.id = ?",  # noqa: S608 (constant)
            (key_id,),
        ) as cur:
            row = await cur.fetchone()
        return _key_record(row) if row is not None else None

    async def list_keys(self, tenant: TenantId) -> list[KeyRecord]:
        """Every key of the tenant, revoked ones included, oldest first. Never the hash."""
        async with self._conn.execute(
            f"SELECT {_KEY_COLUMNS} FROM api_keys k WHERE k.tenant_id = ?"  # noqa: S608
            " ORDER BY k.created_at, k.id",
            (tenant,),
        ) as cur:
            rows = await cur.fetchall()
        return [_key_record(row) for row in rows]

    async def revoke_key(
        self, key_id: KeyId, *, now: float, actor: str = audit_events.SYSTEM
    ) -> KeyRecord:
        """Revoke the key and publish a ``CREDENTIAL`` event. Idempotent (republishes)."""
        async with self._revoking() as events:
            record = await self.get_key(key_id)
            if record is None:
                raise UnknownKey(key_id)
            await self._audit(audit_events.key_revoked(record, actor, now))
            if record.revoked_at is None:
                await self._conn.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE id = ?", (now, key_id)
                )
            events.append(
                RevocationEvent(
                    kind=RevocationKind.CREDENTIAL,
                    tenant=record.tenant,
                    credential_id=record.id,
                    reason="revoked",
                    at=now,
                )
            )
        result = await self.get_key(key_id)
        assert result is not None
        return result

    async def update_key_scopes(
        self,
        key_id: KeyId,
        scopes: Iterable[Scope | str],
        *,
        now: float,
        actor: str = audit_events.SYSTEM,
    ) -> KeyRecord:
        """Narrow a live key to ``scopes`` (a non-empty subset of what it has: never wider),
        audited as ``key.updated``; publishes a ``GRANTS`` event so that every process
        narrows the key's open sockets at once (through the bus, or control.db's watcher).

        :class:`InvalidInput` for no or unknown scopes, :class:`WouldWiden` for a scope the
        key lacks, :class:`UnknownKey`, :class:`KeyNotRotatable` for a revoked or expired key.
        """
        try:
            wanted = apikeys.parse_scopes(scopes)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        async with self._revoking() as events:
            record = await self.get_key(key_id)
            if record is None:
                raise UnknownKey(key_id)
            if not record.is_live(now):
                raise KeyNotRotatable(key_id)
            if not wanted <= record.scopes:
                extra = sorted(s.value for s in wanted - record.scopes)
                raise WouldWiden(f"key {key_id} does not hold {', '.join(extra)}")
            await self._audit(audit_events.key_updated(record, wanted, actor, now))
            await self._conn.execute(
                "UPDATE api_keys SET scopes = ? WHERE id = ?",
                (json.dumps(sorted(s.value for s in wanted)), key_id),
            )
            events.append(
                RevocationEvent(
                    kind=RevocationKind.GRANTS,
                    tenant=record.tenant,
                    credential_id=record.id,
                    reason="narrowed",
                    at=now,
                )
            )
        result = await self.get_key(key_id)
        assert result is not None
        return result

    async def grants_of(
        self, key_ids: Iterable[str]
    ) -> dict[str, tuple[frozenset[Scope], frozenset[str] | None]]:
        """The current scopes and table allowlist of the given API keys (one read; ids that
        are not API keys, or not found, are absent). For the hub's periodic recheck."""
        ids = sorted({k for k in key_ids if is_key_id(k)})
        found: dict[str, tuple[frozenset[Scope], frozenset[str] | None]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            async with self._conn.execute(
                f"SELECT id, scopes, tables FROM api_keys WHERE id IN ({marks})",  # noqa: S608
                chunk,
            ) as cur:
                for key_id, scopes, tables in await cur.fetchall():
                    found[str(key_id)] = (
                        frozenset(Scope(s) for s in json.loads(scopes)),
                        frozenset(json.loads(tables)) if tables is not None else None,
                    )
        return found

    async def rotate_key(
        self, key_id: KeyId, *, now: float, created_by: str | None = None
    ) -> IssuedKey:
        """Issue a new key with the same tenant, name, scopes, tables, rate and expiry, and
        revoke the old one (``replaced_by`` points to the new key), atomically; publishes."""
        async with self._revoking() as events:
            old = await self.get_key(key_id)
            if old is None:
                raise UnknownKey(key_id)
            if not old.is_live(now):
                raise KeyNotRotatable(key_id)
            tenant = await self.get_tenant(old.tenant)
            if tenant is None or not tenant.active:
                raise UnknownTenant(old.tenant)
            issued = await self._insert_key(
                old.tenant,
                old.name,
                old.scopes,
                tables=old.tables,
                expires_at=old.expires_at,
                created_by=clean_name(
                    created_by or old.created_by, what="created_by", max_length=200
                ),
                now=now,
                rate=old.rate,
            )
            await self._conn.execute(
                "UPDATE api_keys SET revoked_at = ?, replaced_by = ? WHERE id = ?",
                (now, issued.record.id, key_id),
            )
            actor = created_by or audit_events.SYSTEM
            await self._audit(audit_events.key_rotated(old, issued.record.id, actor, now))
            events.append(
                RevocationEvent(
                    kind=RevocationKind.CREDENTIAL,
                    tenant=old.tenant,
                    credential_id=old.id,
                    reason="rotated",
                    at=now,
                )
            )
        return issued

    async def revoke_tenant_keys(
        self, tenant: TenantId, *, now: float, actor: str, reason: str, reissue_by: str | None
    ) -> tuple[list[KeyRecord], IssuedKey | None]:
        """Revoke every live key of a live tenant, refuse its JWTs issued until ``now``
        (``jwt_cutoff``) and close all its connections (a ``TENANT`` event), optionally
        issuing one new admin key (``reissue_by``: its ``created_by``), in one transaction
        with the audit entries. For incident containment (``server.incident``); returns the
        keys revoked and the new key."""
        async with self._revoking() as events:
            record = await self.get_tenant(tenant)
            if record is None or not record.active:
                raise UnknownTenant(tenant)
            live = [k for k in await self.list_keys(tenant) if k.revoked_at is None]
            await self._conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE tenant_id = ? AND revoked_at IS NULL",
                (now, tenant),
            )
            for key in live:
                await self._audit(audit_events.key_revoked(key, actor, now))
            await self._conn.execute(
                "INSERT INTO jwt_cutoff (tenant_id, not_before) VALUES (?, ?)"
                " ON CONFLICT (tenant_id) DO UPDATE SET not_before = excluded.not_before",
                (tenant, now),
            )
            issued = None
            if reissue_by is not None:
                issued = await self._insert_key(
                    tenant,
                    "admin",
                    ALL_SCOPES,
                    tables=None,
                    expires_at=None,
                    created_by=clean_name(reissue_by, what="created_by", max_length=200),
                    now=now,
                )
                await self._audit(audit_events.key_created(issued.record, actor))
            events.append(
                RevocationEvent(kind=RevocationKind.TENANT, tenant=tenant, reason=reason, at=now)
            )
        return live, issued

    # -- authentication ------------------------------------------------------------------

    async def authenticate_api_key(self, token: str | None, *, now: float) -> Principal:
        """The principal for an API key, or :class:`AuthError`.

        One indexed read, skipped while control.db is unchanged since the key last verified
        (:mod:`server.control.keycache`); the secret is HMAC-checked either way.
        """
        parsed = apikeys.parse_key(token, environment=self._environment)
        version = self._reads.version()
        cached = self._reads.key(parsed.key_id, version)
        if cached is None:
            cached = await self._read_key(parsed.key_id, version)
        stored_hash = cached.stored_hash if cached is not None else _DUMMY_HASH
        matches = apikeys.secret_matches(self._pepper, parsed.secret, stored_hash)
        if cached is None or not matches:
            raise AuthError(AuthFailure.UNKNOWN, credential_id=parsed.key_id)
        record = cached.record
        apikeys.check_usable(record, now=now)
        if cached.tenant_deleted:
            raise AuthError(AuthFailure.TENANT_DELETED, credential_id=parsed.key_id)
        self._touch(record, now)
        return apikeys.principal_for(record, cached.plan)

    async def _read_key(self, key_id: KeyId, version: int | None) -> CachedKey | None:
        """The stored key for a handshake; ``None`` for no such key in this environment.

        Keys that may be used (not revoked, tenant not deleted) are cached; the caller
        refuses the others, after the secret matched (a guesser learns nothing of a key's
        state).
        """
        rows = await self._conn.execute_fetchall(
            f"SELECT {_KEY_COLUMNS}, k.secret_hash, t.plan, t.deleted_at"  # noqa: S608
            " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = ?",
            (key_id,),
        )
        row = next(iter(rows), None)
        if row is None:
            return None
        record = _key_record(row)
        if record.environment != self._environment:
            return None
        entry = CachedKey(
            stored_hash=bytes(row[13]),
            record=record,
            plan=Plan(row[14]),
            tenant_deleted=row[15] is not None,
        )
        if record.revoked_at is None and not entry.tenant_deleted:
            self._reads.put_key(key_id, entry, version)
        return entry

    async def authenticate_jwt(self, token: str | None, *, now: float) -> Principal:
        """The principal for a JWT access token whose tenant exists and is not deleted."""
        if self._jwt is None:
            if not token:
                raise AuthError(AuthFailure.MISSING)
            if token.count(".") != 2:
                raise AuthError(AuthFailure.MALFORMED)
            raise AuthError(AuthFailure.UNSUPPORTED)
        verified = self._jwt.verify_claims(token, now=now)
        version = self._reads.version()
        tenant = self._reads.tenant(verified.tenant, version)
        if tenant is None:
            tenant = await self.get_tenant(verified.tenant)
            if tenant is not None and tenant.active:
                self._reads.put_tenant(tenant, version)
        if tenant is None:
            raise AuthError(AuthFailure.UNKNOWN_TENANT)
        if not tenant.active:
            raise AuthError(AuthFailure.TENANT_DELETED)
        if token and await self._issued_before_cutoff(verified.tenant, token):
            raise AuthError(AuthFailure.REVOKED, credential_id=verified.credential_id)
        return verified.principal(tenant.plan)

    async def _issued_before_cutoff(self, tenant: TenantId, token: str) -> bool:
        """Whether an incident cut off the tenant's JWTs issued before now (one indexed
        read, cached like key reads; the token's ``iat`` is read only when there is a
        cutoff, after its signature and claims were verified)."""
        version = self._reads.version()
        known, not_before = self._reads.cutoff(tenant, version)
        if not known:
            rows = await self._conn.execute_fetchall(
                "SELECT not_before FROM jwt_cutoff WHERE tenant_id = ?", (tenant,)
            )
            row = next(iter(rows), None)
            not_before = float(row[0]) if row is not None else None
            self._reads.put_cutoff(tenant, not_before, version)
        if not_before is None:
            return False
        import jwt as pyjwt  # only a JWT-verifying hub loads pyjwt (see server/auth/jwt.py)

        issued = pyjwt.decode(token, options={"verify_signature": False}).get("iat")
        return not isinstance(issued, int | float) or issued <= not_before

    async def authenticate(self, token: str | None, *, now: float) -> Principal:
        """Dispatch on the credential's shape: ``ht_…`` API key, else a JWT."""
        if not token:
            raise AuthError(AuthFailure.MISSING)
        if token.startswith("ht_"):
            return await self.authenticate_api_key(token, now=now)
        return await self.authenticate_jwt(token, now=now)

    def _touch(self, record: KeyRecord, now: float) -> None:
        """Record use in the background, at most once per interval per key."""
        last = record.last_used_at
        if last is not None and now - last < LAST_USED_INTERVAL:
            return
        if record.id in self._touching or self._closed:
            return
        self._touching.add(record.id)
        task = asyncio.create_task(self._write_last_used(record.id, now))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write_last_used(self, key_id: KeyId, now: float) -> None:
        try:
            async with self._lock:
                await self._conn.execute(
                    "UPDATE api_keys SET last_used_at = ? WHERE id = ?"
                    " AND (last_used_at IS NULL OR last_used_at < ?)",
                    (now, key_id, now),
                )
        except Exception as exc:
            # Bookkeeping only: never fail or stall a handshake for it.
            log.warning("could not record key use (%s)", type(exc).__name__)
        finally:
            self._touching.discard(key_id)

    # -- periodic recheck ---------------------------------------------------------------

    async def credential_is_live(self, credential_id: str, *, now: float) -> bool:
        """Whether a credential verified earlier is still acceptable at ``now``.

        API key ids: exists, not revoked, not expired, tenant not deleted. JWT credential
        ids (``jwt:<tenant>:<sub>``): tenant exists and is not deleted (the token's own
        ``exp`` is ``Principal.expires_at``, which the hub enforces). Anything else: False.
        """
        return credential_id not in await self.dead_credentials([credential_id], now=now)

    async def dead_credentials(self, credential_ids: Iterable[str], *, now: float) -> set[str]:
        """The subset of ``credential_ids`` that is no longer live (batched reads)."""
        ids = set(credential_ids)
        key_ids = sorted(i for i in ids if is_key_id(i))
        jwt_tenants: dict[str, str] = {}
        for cid in ids:
            parts = cid.split(":", 2)
            if len(parts) == 3 and parts[0] == "jwt" and is_tenant_id(parts[1]) and parts[2]:
                jwt_tenants[cid] = parts[1]
        live: set[str] = set()
        for chunk in _chunks(key_ids, 500):
            marks = ",".join("?" * len(chunk))
            async with self._conn.execute(
                f"SELECT k.id FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"  # noqa: S608
                f" WHERE k.id IN ({marks}) AND k.revoked_at IS NULL"
                " AND (k.expires_at IS NULL OR k.expires_at > ?) AND t.deleted_at IS NULL",
                (*chunk, now),
            ) as cur:
                live.update(row[0] for row in await cur.fetchall())
        tenants = sorted(set(jwt_tenants.values()))
        live_tenants: set[str] = set()
        for chunk in _chunks(tenants, 500):
            marks = ",".join("?" * len(chunk))
            async with self._conn.execute(
                f"SELECT id FROM tenants WHERE id IN ({marks}) AND deleted_at IS NULL",  # noqa: S608
                chunk,
            ) as cur:
                live_tenants.update(row[0] for row in await cur.fetchall())
        live.update(cid for cid, t in jwt_tenants.items() if t in live_tenants)
        return ids - live


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
