"""API keys in ``control.db``: issued, listed, narrowed, rotated and revoked.

Every change is one transaction with its control audit entry; those that take grants away
(revoke, rotate, narrow) run in :meth:`Revocations.revoking`, so their event is logged in
the same transaction and published after the commit. Only the peppered hash of a key's
secret is stored (``server.auth.apikeys``); records read here never carry it. Verifying a
presented key is :mod:`server.control.authentication`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import aiosqlite

from protocol.identity import MAX_KEY_RATE
from server.audit.chain import AuditEntry
from server.audit.events import SYSTEM, audit_control_event
from server.auth import apikeys
from server.auth.apikeys import IssuedKey, KeyRecord
from server.auth.ids import is_key_id
from server.auth.principal import KeyId, Scope, TenantId
from server.auth.revocation import RevocationEvent, RevocationKind
from server.control import audit_entries
from server.control.db import ControlDb, chunks
from server.control.errors import (
    InvalidInput,
    KeyNotRotatable,
    UnknownKey,
    UnknownTenant,
    WouldWiden,
)
from server.control.revocations import Revocations
from server.control.tenants import clean_name, read_tenant

MAX_TABLES_PER_KEY = 1000
MAX_TABLE_ID_LENGTH = 128

KEY_COLUMNS = (
    "k.id, k.tenant_id, k.name, k.environment, k.scopes, k.tables, k.created_by,"
    " k.created_at, k.expires_at, k.revoked_at, k.last_used_at, k.replaced_by, k.rate"
)
"""The ``api_keys`` columns (table alias ``k``) that :func:`key_record` reads, in order."""


def key_record(row: Any) -> KeyRecord:
    """An ``api_keys`` row (:data:`KEY_COLUMNS`, in order) as a record."""
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


def clean_tables(tables: Iterable[str] | None) -> frozenset[str] | None:
    """A key's table allowlist, validated (``None``: every table)."""
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


class Keys:
    """The API keys of every tenant. ``pepper`` keys the stored hashes; ``environment``
    (``live``/``test``) is the prefix of the keys issued."""

    def __init__(
        self, db: ControlDb, revocations: Revocations, *, pepper: bytes, environment: str
    ) -> None:
        self._db = db
        self._revocations = revocations
        self._pepper = pepper
        self._environment = environment

    async def _audit(self, entry: AuditEntry) -> None:
        await audit_control_event(self._db.conn, entry)

    async def insert(
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
        """Insert a key row (validated arguments); the caller holds the transaction."""
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
        await self._db.conn.execute(
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

    async def create(
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
        cleaned_tables = clean_tables(tables)
        if expires_at is not None and not expires_at > now:
            raise InvalidInput("expires_at must be in the future")
        if rate is not None and not 1 <= rate <= MAX_KEY_RATE:
            raise InvalidInput(f"rate must be 1 to {MAX_KEY_RATE} ops per minute")
        async with self._db.transaction():
            record = await read_tenant(self._db.conn, tenant)
            if record is None or not record.active:
                raise UnknownTenant(tenant)
            issued = await self.insert(
                tenant,
                name,
                parsed_scopes,
                tables=cleaned_tables,
                expires_at=expires_at,
                created_by=created_by,
                now=now,
                rate=rate,
            )
            await self._audit(audit_entries.key_created(issued.record, created_by))
            return issued

    async def get(self, key_id: KeyId) -> KeyRecord | None:
        """The key's record (never its hash), or ``None``."""
        if not is_key_id(key_id):
            return None
        async with self._db.conn.execute(
            f"SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.id = ?",  # noqa: S608 (constant)
            (key_id,),
        ) as cur:
            row = await cur.fetchone()
        return key_record(row) if row is not None else None

    async def of_tenant(self, tenant: TenantId) -> list[KeyRecord]:
        """Every key of the tenant, revoked ones included, oldest first. Never the hash."""
        async with self._db.conn.execute(
            f"SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.tenant_id = ?"  # noqa: S608
            " ORDER BY k.created_at, k.id",
            (tenant,),
        ) as cur:
            rows = await cur.fetchall()
        return [key_record(row) for row in rows]

    async def grants(
        self, key_ids: Iterable[str]
    ) -> dict[str, tuple[frozenset[Scope], frozenset[str] | None]]:
        """The current scopes and table allowlist of the given API keys (one read; ids that
        are not API keys, or not found, are absent). For the hub's periodic recheck."""
        ids = sorted({k for k in key_ids if is_key_id(k)})
        found: dict[str, tuple[frozenset[Scope], frozenset[str] | None]] = {}
        for chunk in chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            async with self._db.conn.execute(
                f"SELECT id, scopes, tables FROM api_keys WHERE id IN ({marks})",  # noqa: S608
                chunk,
            ) as cur:
                for key_id, scopes, tables in await cur.fetchall():
                    found[str(key_id)] = (
                        frozenset(Scope(s) for s in json.loads(scopes)),
                        frozenset(json.loads(tables)) if tables is not None else None,
                    )
        return found

    async def revoke(self, key_id: KeyId, *, now: float, actor: str = SYSTEM) -> KeyRecord:
        """Revoke the key and publish a ``CREDENTIAL`` event. Idempotent (republishes)."""
        async with self._revocations.revoking() as events:
            record = await self.get(key_id)
            if record is None:
                raise UnknownKey(key_id)
            await self._audit(audit_entries.key_revoked(record, actor, now))
            if record.revoked_at is None:
                await self._db.conn.execute(
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
        result = await self.get(key_id)
        assert result is not None
        return result

    async def narrow(
        self,
        key_id: KeyId,
        scopes: Iterable[Scope | str],
        *,
        now: float,
        actor: str = SYSTEM,
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
        async with self._revocations.revoking() as events:
            record = await self.get(key_id)
            if record is None:
                raise UnknownKey(key_id)
            if not record.is_live(now):
                raise KeyNotRotatable(key_id)
            if not wanted <= record.scopes:
                extra = sorted(s.value for s in wanted - record.scopes)
                raise WouldWiden(f"key {key_id} does not hold {', '.join(extra)}")
            await self._audit(audit_entries.key_updated(record, wanted, actor, now))
            await self._db.conn.execute(
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
        result = await self.get(key_id)
        assert result is not None
        return result

    async def rotate(
        self, key_id: KeyId, *, now: float, created_by: str | None = None
    ) -> IssuedKey:
        """Issue a new key with the same tenant, name, scopes, tables, rate and expiry, and
        revoke the old one (``replaced_by`` points to the new key), atomically; publishes."""
        async with self._revocations.revoking() as events:
            old = await self.get(key_id)
            if old is None:
                raise UnknownKey(key_id)
            if not old.is_live(now):
                raise KeyNotRotatable(key_id)
            tenant = await read_tenant(self._db.conn, old.tenant)
            if tenant is None or not tenant.active:
                raise UnknownTenant(old.tenant)
            issued = await self.insert(
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
            await self._db.conn.execute(
                "UPDATE api_keys SET revoked_at = ?, replaced_by = ? WHERE id = ?",
                (now, issued.record.id, key_id),
            )
            actor = created_by or SYSTEM
            await self._audit(audit_entries.key_rotated(old, issued.record.id, actor, now))
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


async def revoke_all(conn: aiosqlite.Connection, tenant: TenantId, *, now: float) -> None:
    """Mark every live key of ``tenant`` revoked at ``now``, inside the caller's
    transaction (which publishes the tenant's ``TENANT`` event)."""
    await conn.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE tenant_id = ? AND revoked_at IS NULL",
        (now, tenant),
    )
