"""Verified API keys and tenants, kept between handshakes until control.db changes at all.

How it works
------------
A handshake with an API key used to read its ``api_keys`` row (joined with its tenant) from
control.db: three hops to aiosqlite's thread, about a fifth of the hub's CPU per
connect-welcome-close. :class:`ControlReadCache` keeps what such a read returned for a key
that verified, and a tenant a JWT named (with its incident cutoff), so the next handshake
with it reads nothing.

Revocation is not weakened: every lookup first reads ``PRAGMA data_version`` on a private
connection to control.db (a few microseconds, no lock, no thread hop). SQLite changes that
number whenever *any other* connection - this process's control connection, the CLI in
another process, another hub - commits to the file. A different number empties the cache,
so a revoked key, a narrowed grant, an expiry moved earlier, a deleted tenant or a changed
plan is read fresh at the very next handshake. An entry is stored with the number read
*before* its row was read, so a commit that lands during that read invalidates it too.

The cache holds no secret. A key that verified (its peppered HMAC matched the stored hash)
is kept under the SHA-256 of the whole presented key, as the JWT verifier keeps tokens: the
next handshake with the same key, while ``data_version`` holds, is the digest and one dict
lookup instead of the shape check, the lookup and the HMAC. The secret's 256 random bits
make the digest as unguessable as the key; another secret, or a key changed by a single
symbol, has another digest and takes the full path. Expiry is checked against the
handshake's own clock at every use.
If ``data_version`` cannot be read (a busy or broken file), lookups miss and the caller
reads the database as before.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from server.auth.apikeys import KeyRecord, principal_for
from server.auth.principal import KeyId, Plan, Principal, TenantId
from server.control.tenants import TenantRecord

log = logging.getLogger(__name__)

MAX_ENTRIES = 10_000
"""Entries per kind; on overflow the kind is emptied (a refill is one read per key)."""


@dataclass(frozen=True, slots=True)
class CachedKey:
    """What a key lookup read: the stored hash, the key, its tenant's plan and state, and
    the principal the key stands for (immutable, so every handshake with it shares one)."""

    stored_hash: bytes
    record: KeyRecord
    plan: Plan
    tenant_deleted: bool = False
    principal: Principal = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "principal", principal_for(self.record, self.plan))

    def __repr__(self) -> str:  # the hash stays out of logs
        return f"CachedKey(record={self.record!r}, plan={self.plan!r})"


class ControlReadCache:
    """Key and tenant reads for handshakes, valid while control.db's ``data_version`` holds.

    Use: ``version = cache.version()``; ``cache.key(key_id, version)`` (``None`` = read the
    database); after a read that verified, ``cache.put_key(key_id, entry, version)``.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._cursor: sqlite3.Cursor | None = None
        self._version: int | None = None
        self._keys: dict[KeyId, CachedKey] = {}
        self._verified: dict[bytes, CachedKey] = {}
        """SHA-256 of a presented key that verified -> its entry."""
        self._tenants: dict[TenantId, TenantRecord] = {}
        self._cutoffs: dict[TenantId, float | None] = {}

    def open(self) -> None:
        """Open the private connection (control.db exists: the control plane created it)."""
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=0")  # never wait on the event loop: miss instead
        self._conn = conn
        self._cursor = conn.cursor()  # reused: a cursor per handshake was a third of a read

    def close(self) -> None:
        """Close the connection and forget everything (idempotent)."""
        self.clear()
        if self._conn is not None:
            self._conn.close()
            self._conn = self._cursor = None

    def clear(self) -> None:
        """Forget every entry."""
        self._keys.clear()
        self._verified.clear()
        self._tenants.clear()
        self._cutoffs.clear()

    def version(self) -> int | None:
        """control.db's current ``data_version``; ``None`` (cache unusable) if unreadable.

        A change since the last call empties the cache.
        """
        if self._cursor is None:
            return None
        try:
            row = self._cursor.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error as exc:
            log.warning("control.db data_version unreadable (%s)", type(exc).__name__)
            self.clear()
            self._version = None
            return None
        version = int(row[0])
        if version != self._version:
            self.clear()
            self._version = version
        return version

    def key(self, key_id: KeyId, version: int | None) -> CachedKey | None:
        """The cached lookup of ``key_id`` if still valid at ``version``."""
        if version is None or version != self._version:
            return None
        return self._keys.get(key_id)

    def put_key(self, key_id: KeyId, entry: CachedKey, version: int | None) -> None:
        """Keep ``entry``, read after ``version`` was; dropped if control.db changed since."""
        if version is None or version != self.version():
            return
        if len(self._keys) >= MAX_ENTRIES:
            self._keys.clear()
        self._keys[key_id] = entry

    def verified(self, digest: bytes, version: int | None) -> CachedKey | None:
        """The entry of the key whose SHA-256 is ``digest``, if it verified at ``version``."""
        if version is None or version != self._version:
            return None
        return self._verified.get(digest)

    def put_verified(self, digest: bytes, entry: CachedKey, version: int | None) -> None:
        """Remember that the key hashing to ``digest`` verified as ``entry`` (cached at
        ``version``); dropped if control.db changed since."""
        if version is None or version != self.version():
            return
        if len(self._verified) >= MAX_ENTRIES:
            self._verified.clear()
        self._verified[digest] = entry

    def tenant(self, tenant: TenantId, version: int | None) -> TenantRecord | None:
        """The cached tenant record if still valid at ``version``."""
        if version is None or version != self._version:
            return None
        return self._tenants.get(tenant)

    def put_tenant(self, record: TenantRecord, version: int | None) -> None:
        """Keep ``record``, read after ``version`` was; dropped if control.db changed since."""
        if version is None or version != self.version():
            return
        if len(self._tenants) >= MAX_ENTRIES:
            self._tenants.clear()
        self._tenants[record.id] = record

    def cutoff(self, tenant: TenantId, version: int | None) -> tuple[bool, float | None]:
        """``(known, not_before)``: the tenant's JWT cutoff (``None``: none) if cached."""
        if version is None or version != self._version or tenant not in self._cutoffs:
            return False, None
        return True, self._cutoffs[tenant]

    def put_cutoff(self, tenant: TenantId, not_before: float | None, version: int | None) -> None:
        """Keep the tenant's cutoff, read after ``version`` was; dropped if control.db changed."""
        if version is None or version != self.version():
            return
        if len(self._cutoffs) >= MAX_ENTRIES:
            self._cutoffs.clear()
        self._cutoffs[tenant] = not_before
