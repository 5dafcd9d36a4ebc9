"""The tenant database's own tables, and opening a tenant database file.

``_ht_tables``  one row per table: wire id, SQL name, name, version, dropped, columns (JSON)
``_ht_oplog``   one row per committed batch: the change as broadcast, for replay and
                idempotency (unique on table, client id, op id)
``_ht_tombstones`` deleted row ids, so a deleted row stays deleted
``_ht_meta``    tenant-wide counters (the SQL name counter)
``_ht_functions`` the tenant's custom formula functions (upper-case name, definition text)
``_ht_webhooks`` the tenant's webhooks (table id or NULL for every table, URL, delivery state;
                ``disabled_at``: stopped after a batch failed for good, until a test passes)
``_ht_webhook_outbox`` one row per committed change per matching webhook, written by the
                group commit in the change's own transaction (``server/webhooks``)
User tables are ``t_<n>`` with columns ``_id``, ``_ord`` and ``c_<n>``; no declared column
types, so SQLite stores each value exactly as given.
"""

from __future__ import annotations

import re
import sqlite3
from enum import StrEnum
from pathlib import Path

TENANT_FILE_RE = re.compile(r"^[a-z0-9]{8,40}$")

DDL = """
CREATE TABLE IF NOT EXISTS _ht_tables (
    id TEXT PRIMARY KEY,
    sql TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    dropped INTEGER NOT NULL DEFAULT 0,
    columns TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS _ht_oplog (
    tbl TEXT NOT NULL,
    version INTEGER NOT NULL,
    client TEXT NOT NULL,
    op TEXT NOT NULL,
    ts REAL NOT NULL,
    change BLOB NOT NULL,
    PRIMARY KEY (tbl, version)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS _ht_oplog_idem ON _ht_oplog (tbl, client, op);
CREATE TABLE IF NOT EXISTS _ht_tombstones (
    tbl TEXT NOT NULL,
    row TEXT NOT NULL,
    PRIMARY KEY (tbl, row)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _ht_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO _ht_meta (key, value) VALUES ('next_sql', 1);
CREATE TABLE IF NOT EXISTS _ht_functions (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _ht_webhooks (
    id TEXT PRIMARY KEY,
    tbl TEXT,
    url TEXT NOT NULL,
    created_at REAL NOT NULL,
    created_by TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0,
    pending_upto INTEGER,
    last_error TEXT,
    delivered INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    last_failed TEXT,
    last_delivered_at REAL,
    disabled_at REAL
);
CREATE TABLE IF NOT EXISTS _ht_webhook_outbox (
    seq INTEGER PRIMARY KEY,
    hook TEXT NOT NULL,
    tbl TEXT NOT NULL,
    version INTEGER NOT NULL,
    change BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS _ht_webhook_outbox_hook ON _ht_webhook_outbox (hook, seq);
"""


class Durability(StrEnum):
    """How far an acknowledged op survives.

    ``process``: WAL with ``synchronous=NORMAL``; an acked op survives the server process
    being killed (the OS holds the written WAL pages), not a power loss. ``power``:
    ``synchronous=FULL``; every commit is fsynced before the ack. See bench/commit.py.
    """

    PROCESS = "process"
    POWER = "power"


def checkpoint(conn: sqlite3.Connection) -> None:
    """Copy committed WAL frames into the database file without blocking the writer."""
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def tenant_path(data_dir: Path, tenant: str) -> Path:
    """The database file of a tenant. Tenant ids are server-made; checked again here."""
    if not TENANT_FILE_RE.match(tenant):
        raise ValueError("not a tenant id")
    return data_dir / "tenants" / f"{tenant}.db"


def configure(conn: sqlite3.Connection, durability: Durability, writer: bool) -> None:
    """Pragmas for a tenant connection (run inside its aiosqlite thread)."""
    conn.execute("PRAGMA busy_timeout=5000")
    if writer:
        conn.execute("PRAGMA journal_mode=WAL")
        # Checkpoints run on the read connection, off the commit path (TenantStore): an
        # automatic one inside a commit would stall that commit's acks and broadcast.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.executescript(DDL)
    sync = "FULL" if durability is Durability.POWER else "NORMAL"
    conn.execute(f"PRAGMA synchronous={sync}")
    if not writer:
        conn.execute("PRAGMA query_only=1")
