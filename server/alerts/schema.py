"""The alert outbox in ``control.db`` and the trigger that fills it.

``_ht_alert_outbox``: one row per alert. ``event_id`` (``al_`` + 32 hex of the audit
entry's hash) is the idempotency id a receiver sees; ``state`` is ``pending``,
``delivered`` or ``failed``; ``attempts``/``next_at``/``last_error`` are the webhook sink's
retry state; ``lease_until`` is set by the process sending the row, so that another process
skips it meanwhile (a crashed sender's lease simply runs out); ``logged`` says the log sink
has written it.

The trigger is versioned by name: a changed rule set drops the older triggers.
"""

from __future__ import annotations

import aiosqlite

from server.alerts.rules import kind_sql, when_sql

TRIGGER = "_ht_alert_raise_v1"
_OLD_TRIGGERS: tuple[str, ...] = ()

OUTBOX_DDL = """
CREATE TABLE IF NOT EXISTS _ht_alert_outbox (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    audit_id INTEGER NOT NULL,
    ts REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    ip TEXT,
    details TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered_at REAL,
    logged INTEGER NOT NULL DEFAULT 0
)
"""

INDEX_DDL = "CREATE INDEX IF NOT EXISTS _ht_alert_outbox_due ON _ht_alert_outbox (state, next_at)"


def trigger_ddl() -> str:
    """The trigger copying alerting audit entries into the outbox (constant text)."""
    return (
        f"CREATE TRIGGER IF NOT EXISTS {TRIGGER} AFTER INSERT ON _ht_audit_log "  # noqa: S608
        f"WHEN {when_sql()} BEGIN "
        "INSERT OR IGNORE INTO _ht_alert_outbox (event_id, kind, audit_id, ts, actor, action,"
        " target, ip, details, next_at) VALUES ('al_' || substr(NEW.hash, 1, 32), "
        f"{kind_sql()}, NEW.id, NEW.ts, NEW.actor, NEW.action, NEW.target, NEW.ip,"
        " NEW.details, NEW.ts); END"
    )


async def ensure_schema(conn: aiosqlite.Connection) -> None:
    """Create the outbox and its trigger if missing (idempotent). The control audit log
    and ``api_keys`` must exist (``ControlPlane.open`` calls this after creating them)."""
    began = not conn.in_transaction
    if began:
        await conn.execute("BEGIN IMMEDIATE")
    try:
        await conn.execute(OUTBOX_DDL)
        await conn.execute(INDEX_DDL)
        for name in _OLD_TRIGGERS:
            await conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        await conn.execute(trigger_ddl())
    except BaseException:
        if began:
            await conn.rollback()
        raise
    if began:
        await conn.commit()
