"""Authentication: a presented credential (API key or JWT) becomes a :class:`Principal`, at
the handshake and again at every periodic recheck.

How it works
------------
An API key's shape, checksum and environment are checked first without the database
(:func:`server.auth.apikeys.parse_key`); then its row is found by key id, from the
:class:`~server.control.keycache.ControlReadCache` while control.db is unchanged since the
key last verified, else by one indexed read, and the peppered hash compared in constant
time either way; a key that verified is known by its SHA-256 until control.db changes, so
presenting it again is one digest and one lookup. An unknown id is compared against a
dummy hash, so it takes as long as a wrong secret. ``last_used_at`` is written in the
background at most once per :data:`LAST_USED_INTERVAL` per key (the row just read says
when it was last written, so this holds across processes too).

A JWT's signature and claims are checked by :class:`~server.auth.jwt.JwtVerifier` (which
keeps verified claims by token hash, the time claims re-checked at every use); then its
tenant must exist and not be deleted, and the token must have been issued after the
tenant's incident cutoff (``jwt_cutoff``), both read through the same cache.

:meth:`Authentication.dead_credentials` is the pull side of revocation: which credentials
verified earlier are no longer live (the hub's periodic recheck, and after a bus outage).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

from server.auth import apikeys
from server.auth.apikeys import KeyRecord
from server.auth.errors import AuthError, AuthFailure
from server.auth.ids import is_key_id, is_tenant_id
from server.auth.jwt import JwtVerifier
from server.auth.principal import KeyId, Plan, Principal, TenantId
from server.control.db import ControlDb, chunks
from server.control.keycache import CachedKey, ControlReadCache
from server.control.keys import KEY_COLUMNS, key_record
from server.control.tenants import read_tenant

log = logging.getLogger(__name__)

#: ``last_used_at`` is rewritten at most this often per key (seconds).
LAST_USED_INTERVAL = 60.0

# A syntactically valid hash to compare against when the key id is unknown, so an unknown
# id and a wrong secret take the same time.
_DUMMY_HASH = bytes(32)


def _key_digest(token: str | None) -> bytes | None:
    """SHA-256 of a presented key, or ``None`` when it cannot be one (then it takes the
    full path, which says why)."""
    if not token or len(token) > apikeys.MAX_KEY_LENGTH or not token.isascii():
        return None
    return hashlib.sha256(token.encode("ascii")).digest()


class Authentication:
    """Verifies credentials against ``control.db``. ``open()`` before use, ``close()``
    after (waits for the background ``last_used_at`` writes)."""

    def __init__(
        self,
        db: ControlDb,
        *,
        pepper: bytes,
        environment: str,
        jwt: JwtVerifier | None,
    ) -> None:
        self._db = db
        self._hasher = apikeys.SecretHasher(pepper)
        self._environment = environment
        self._jwt = jwt
        self._reads = ControlReadCache(db.path)
        self._touching: set[KeyId] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    def open(self) -> None:
        """Open the read cache's connection (control.db exists)."""
        self._reads.open()

    async def drain(self) -> None:
        """Wait for pending background writes (``last_used_at``)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def close(self) -> None:
        """Start no more background writes, finish those pending, close the cache."""
        self._closed = True
        await self.drain()
        self._reads.close()

    def authenticate(self, token: str | None, *, now: float) -> Coroutine[Any, Any, Principal]:
        """Dispatch on the credential's shape: ``ht_…`` API key, else a JWT (to await).

        Hands back the chosen method's coroutine rather than awaiting it in one of its own:
        one coroutine less on every handshake.
        """
        if token and token.startswith("ht_"):
            return self.authenticate_api_key(token, now=now)
        return self.authenticate_jwt(token, now=now)

    # -- API keys ------------------------------------------------------------------------

    async def authenticate_api_key(self, token: str | None, *, now: float) -> Principal:
        """The principal for an API key, or :class:`AuthError`.

        One indexed read, skipped while control.db is unchanged since the key last verified
        (:mod:`server.control.keycache`); the secret is HMAC-checked unless this very key
        verified since (its SHA-256 is then known).
        """
        digest = _key_digest(token)
        version = self._reads.version()
        if digest is not None and (known := self._reads.verified(digest, version)) is not None:
            apikeys.check_usable(known.record, now=now)  # expiry, at this handshake's clock
            self._touch(known.record, now)
            return known.principal
        parsed = apikeys.parse_key(token, environment=self._environment)
        cached = self._reads.key(parsed.key_id, version)
        if cached is None:
            cached = await self._read_key(parsed.key_id, version)
        stored_hash = cached.stored_hash if cached is not None else _DUMMY_HASH
        matches = self._hasher.matches(parsed.secret, stored_hash)
        if cached is None or not matches:
            raise AuthError(AuthFailure.UNKNOWN, credential_id=parsed.key_id)
        record = cached.record
        apikeys.check_usable(record, now=now)
        if cached.tenant_deleted:
            raise AuthError(AuthFailure.TENANT_DELETED, credential_id=parsed.key_id)
        self._touch(record, now)
        if digest is not None:
            self._reads.put_verified(digest, cached, version)
        return cached.principal

    async def _read_key(self, key_id: KeyId, version: int | None) -> CachedKey | None:
        """The stored key for a handshake; ``None`` for no such key in this environment.

        Keys that may be used (not revoked, tenant not deleted) are cached; the caller
        refuses the others, after the secret matched (a guesser learns nothing of a key's
        state).
        """
        rows = await self._db.conn.execute_fetchall(
            f"SELECT {KEY_COLUMNS}, k.secret_hash, t.plan, t.deleted_at"  # noqa: S608
            " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = ?",
            (key_id,),
        )
        row = next(iter(rows), None)
        if row is None:
            return None
        record = key_record(row)
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
            async with self._db.lock:
                await self._db.conn.execute(
                    "UPDATE api_keys SET last_used_at = ? WHERE id = ?"
                    " AND (last_used_at IS NULL OR last_used_at < ?)",
                    (now, key_id, now),
                )
        except Exception as exc:
            # Bookkeeping only: never fail or stall a handshake for it.
            log.warning("could not record key use (%s)", type(exc).__name__)
        finally:
            self._touching.discard(key_id)

    # -- JWTs ----------------------------------------------------------------------------

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
            tenant = await read_tenant(self._db.conn, verified.tenant)
            if tenant is not None and tenant.active:
                self._reads.put_tenant(tenant, version)
        if tenant is None:
            raise AuthError(AuthFailure.UNKNOWN_TENANT)
        if not tenant.active:
            raise AuthError(AuthFailure.TENANT_DELETED)
        known, not_before = self._reads.cutoff(verified.tenant, version)
        if not known:  # read here, not in a coroutine of its own: a hit is the common case
            not_before = await self._read_cutoff(verified.tenant, version)
        if not_before is not None and (
            verified.issued_at is None or verified.issued_at <= not_before
        ):  # an incident cut off the tenant's JWTs issued before it
            raise AuthError(AuthFailure.REVOKED, credential_id=verified.credential_id)
        return verified.principal(tenant.plan)

    async def _read_cutoff(self, tenant: TenantId, version: int | None) -> float | None:
        """The tenant's JWT cutoff (``None``: none), read and cached like key reads."""
        rows = await self._db.conn.execute_fetchall(
            "SELECT not_before FROM jwt_cutoff WHERE tenant_id = ?", (tenant,)
        )
        row = next(iter(rows), None)
        not_before = float(row[0]) if row is not None else None
        self._reads.put_cutoff(tenant, not_before, version)
        return not_before

    # -- periodic recheck ---------------------------------------------------------------

    async def dead_credentials(self, credential_ids: Iterable[str], *, now: float) -> set[str]:
        """The subset of ``credential_ids`` that is no longer live (batched reads).

        API key ids: exists, not revoked, not expired, tenant not deleted. JWT credential
        ids (``jwt:<tenant>:<sub>``): tenant exists and is not deleted (the token's own
        ``exp`` is ``Principal.expires_at``, which the hub enforces). Anything else: dead.
        """
        ids = set(credential_ids)
        key_ids = sorted(i for i in ids if is_key_id(i))
        jwt_tenants: dict[str, str] = {}
        for cid in ids:
            parts = cid.split(":", 2)
            if len(parts) == 3 and parts[0] == "jwt" and is_tenant_id(parts[1]) and parts[2]:
                jwt_tenants[cid] = parts[1]
        live: set[str] = set()
        conn = self._db.conn
        for chunk in chunks(key_ids, 500):
            marks = ",".join("?" * len(chunk))
            async with conn.execute(
                f"SELECT k.id FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"  # noqa: S608
                f" WHERE k.id IN ({marks}) AND k.revoked_at IS NULL"
                " AND (k.expires_at IS NULL OR k.expires_at > ?) AND t.deleted_at IS NULL",
                (*chunk, now),
            ) as cur:
                live.update(row[0] for row in await cur.fetchall())
        tenants = sorted(set(jwt_tenants.values()))
        live_tenants: set[str] = set()
        for chunk in chunks(tenants, 500):
            marks = ",".join("?" * len(chunk))
            async with conn.execute(
                f"SELECT id FROM tenants WHERE id IN ({marks}) AND deleted_at IS NULL",  # noqa: S608
                chunk,
            ) as cur:
                live_tenants.update(row[0] for row in await cur.fetchall())
        live.update(cid for cid, t in jwt_tenants.items() if t in live_tenants)
        return ids - live
