"""The control plane's own tables in ``control.db`` (others add theirs; we never touch them).

* ``tenants``: one row per tenant, soft-deleted (``deleted_at``) so ids are never reused.
* ``api_keys``: one row per key; ``secret_hash`` is ``HMAC-SHA256(pepper, secret)``;
  ``rate`` is the key's own ops-per-minute limit (tighter than the plan's), or NULL.
* ``jwt_cutoff``: per tenant, JWTs issued (``iat``) at or before ``not_before`` are refused:
  what ``hypertab incident contain`` sets, since the JWT secret itself is the issuer's.
* ``revocation_log``: one row per revocation, committed in the same transaction as the
  revocation itself. ``seq`` only grows, so the watcher of another process reads "every
  revocation after the last one I saw" without relying on anyone's clock.
"""

from __future__ import annotations

import aiosqlite

SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS tenants (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        plan        TEXT NOT NULL,
        region      TEXT NOT NULL DEFAULT '',
        created_at  REAL NOT NULL,
        deleted_at  REAL
    ) STRICT
    """,
    """
    CREATE TABLE IF NOT EXISTS api_keys (
        id            TEXT PRIMARY KEY,
        tenant_id     TEXT NOT NULL REFERENCES tenants (id),
        name          TEXT NOT NULL,
        environment   TEXT NOT NULL,
        scopes        TEXT NOT NULL,
        tables        TEXT,
        secret_hash   BLOB NOT NULL,
        created_by    TEXT NOT NULL,
        created_at    REAL NOT NULL,
        expires_at    REAL,
        revoked_at    REAL,
        last_used_at  REAL,
        replaced_by   TEXT,
        rate          INTEGER
    ) STRICT
    """,
    "CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant_id)",
    """
    CREATE TABLE IF NOT EXISTS jwt_cutoff (
        tenant_id   TEXT PRIMARY KEY REFERENCES tenants (id),
        not_before  REAL NOT NULL
    ) STRICT
    """,
    """
    CREATE TABLE IF NOT EXISTS revocation_log (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        kind           TEXT NOT NULL,
        tenant_id      TEXT,
        credential_id  TEXT,
        reason         TEXT NOT NULL,
        at             REAL NOT NULL
    )
    """,
)


#: revocation_log rows kept (older ones are pruned at open). Watchers only need the rows
#: written since their last 50 ms poll; AUTOINCREMENT never reuses a pruned seq.
LOG_RETENTION_ROWS = 10_000


_ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (("api_keys", "rate", "INTEGER"),)
"""Columns added after a table was first shipped: (table, column, type), added to older
control.db files at open."""


async def _add_missing_columns(conn: aiosqlite.Connection) -> None:
    for table, column, kind in _ADDED_COLUMNS:
        async with conn.execute(f"PRAGMA table_info({table})") as cur:
            present = {row[1] for row in await cur.fetchall()}
        if column not in present:
            await conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


async def ensure_schema(conn: aiosqlite.Connection) -> None:
    """Create the control plane's tables if missing and prune old log rows (one transaction)."""
    await conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in SCHEMA:
            await conn.execute(statement)
        await _add_missing_columns(conn)
        await conn.execute(
            "DELETE FROM revocation_log WHERE seq <= (SELECT MAX(seq) FROM revocation_log) - ?",
            (LOG_RETENTION_ROWS,),
        )
    except BaseException:
        await conn.rollback()
        raise
    await conn.commit()
