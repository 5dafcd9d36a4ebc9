"""Reading and updating the alert outbox (``_ht_alert_outbox``) on a control connection.

Every write is one short ``BEGIN IMMEDIATE`` transaction; the connection is the caller's
own (the dispatcher's, or a CLI command's), never the control plane's.
"""

from __future__ import annotations

from typing import Any

import aiosqlite

from server.alerts.rules import Alert

_COLUMNS = (
    "id, event_id, kind, audit_id, ts, actor, action, target, ip, details, state, attempts,"
    " next_at, last_error, delivered_at"
)


def _alert(row: Any) -> Alert:
    return Alert(
        row=int(row[0]),
        event_id=str(row[1]),
        kind=str(row[2]),
        audit_id=int(row[3]),
        ts=float(row[4]),
        actor=str(row[5]),
        action=str(row[6]),
        target=str(row[7]),
        ip=None if row[8] is None else str(row[8]),
        details=str(row[9]),
        state=str(row[10]),
        attempts=int(row[11]),
        next_at=float(row[12]),
        last_error=None if row[13] is None else str(row[13]),
        delivered_at=None if row[14] is None else float(row[14]),
    )


async def claim_due(
    conn: aiosqlite.Connection, *, now: float, lease: float, limit: int = 50
) -> list[Alert]:
    """Lease the pending alerts that are due (oldest first) for ``lease`` seconds.

    A plain read first: with nothing due (nearly always) no write lock is taken, so the
    dispatcher, woken by every commit of another connection, never makes them wait.
    """
    async with conn.execute(
        "SELECT 1 FROM _ht_alert_outbox WHERE state = 'pending' AND next_at <= ?"
        " AND lease_until <= ? LIMIT 1",
        (now, now),
    ) as cur:
        if await cur.fetchone() is None:
            return []
    await conn.execute("BEGIN IMMEDIATE")
    try:
        async with conn.execute(
            f"SELECT {_COLUMNS} FROM _ht_alert_outbox WHERE state = 'pending'"  # noqa: S608
            " AND next_at <= ? AND lease_until <= ? ORDER BY id LIMIT ?",
            (now, now, limit),
        ) as cur:
            rows = [_alert(r) for r in await cur.fetchall()]
        if rows:
            marks = ",".join("?" * len(rows))
            await conn.execute(
                f"UPDATE _ht_alert_outbox SET lease_until = ? WHERE id IN ({marks})",  # noqa: S608
                (now + lease, *(a.row for a in rows)),
            )
    except BaseException:
        await conn.rollback()
        raise
    await conn.commit()
    return rows


async def _update(conn: aiosqlite.Connection, sql: str, params: tuple[Any, ...]) -> None:
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await conn.execute(sql, params)
    except BaseException:
        await conn.rollback()
        raise
    await conn.commit()


async def mark_logged(conn: aiosqlite.Connection, row: int) -> None:
    """The log sink has written the alert."""
    await _update(conn, "UPDATE _ht_alert_outbox SET logged = 1 WHERE id = ?", (row,))


async def logged(conn: aiosqlite.Connection, row: int) -> bool:
    """Whether the log sink already wrote it (a retry must not log it again)."""
    async with conn.execute("SELECT logged FROM _ht_alert_outbox WHERE id = ?", (row,)) as cur:
        found = await cur.fetchone()
    return bool(found and found[0])


async def mark_delivered(conn: aiosqlite.Connection, row: int, *, now: float) -> None:
    """Delivered to every sink: never sent again."""
    await _update(
        conn,
        "UPDATE _ht_alert_outbox SET state = 'delivered', delivered_at = ?, lease_until = 0,"
        " last_error = NULL WHERE id = ?",
        (now, row),
    )


async def mark_retry(
    conn: aiosqlite.Connection, row: int, *, attempts: int, next_at: float, error: str
) -> None:
    """A failed attempt: try again at ``next_at``."""
    await _update(
        conn,
        "UPDATE _ht_alert_outbox SET attempts = ?, next_at = ?, last_error = ?, lease_until = 0"
        " WHERE id = ?",
        (attempts, next_at, error[:300], row),
    )


async def mark_failed(conn: aiosqlite.Connection, row: int, *, attempts: int, error: str) -> None:
    """Past the retry bound: given up, visible in ``alerts list --failed``."""
    await _update(
        conn,
        "UPDATE _ht_alert_outbox SET state = 'failed', attempts = ?, last_error = ?,"
        " lease_until = 0 WHERE id = ?",
        (attempts, error[:300], row),
    )


async def release(conn: aiosqlite.Connection, rows: list[int], *, next_at: float) -> None:
    """Give back leases without counting an attempt: the sink is down this round, so these
    wait until ``next_at`` (the failed row's retry) instead of being tried now."""
    if rows:
        marks = ",".join("?" * len(rows))
        await _update(
            conn,
            "UPDATE _ht_alert_outbox SET lease_until = 0, next_at = max(next_at, ?)"  # noqa: S608
            f" WHERE id IN ({marks})",
            (next_at, *rows),
        )


async def retry_failed(conn: aiosqlite.Connection, *, now: float) -> int:
    """Put every failed alert back in the queue (``alerts retry``); returns how many."""
    await conn.execute("BEGIN IMMEDIATE")
    try:
        cur = await conn.execute(
            "UPDATE _ht_alert_outbox SET state = 'pending', attempts = 0, next_at = ?,"
            " lease_until = 0 WHERE state = 'failed'",
            (now,),
        )
        count = cur.rowcount
    except BaseException:
        await conn.rollback()
        raise
    await conn.commit()
    return count


async def listing(
    conn: aiosqlite.Connection, *, state: str | None = None, limit: int = 100
) -> list[Alert]:
    """The newest alerts (optionally of one state), newest first."""
    sql = f"SELECT {_COLUMNS} FROM _ht_alert_outbox"  # noqa: S608
    params: tuple[Any, ...] = ()
    if state is not None:
        sql += " WHERE state = ?"
        params = (state,)
    sql += " ORDER BY id DESC LIMIT ?"
    async with conn.execute(sql, (*params, limit)) as cur:
        return [_alert(r) for r in await cur.fetchall()]


async def counts(conn: aiosqlite.Connection) -> dict[str, int]:
    """How many alerts are in each state."""
    async with conn.execute("SELECT state, COUNT(*) FROM _ht_alert_outbox GROUP BY state") as cur:
        found = {str(r[0]): int(r[1]) for r in await cur.fetchall()}
    return {s: found.get(s, 0) for s in ("pending", "delivered", "failed")}


async def next_due(conn: aiosqlite.Connection) -> float | None:
    """When the earliest pending alert is due, or ``None``."""
    async with conn.execute(
        "SELECT MIN(max(next_at, lease_until)) FROM _ht_alert_outbox WHERE state = 'pending'"
    ) as cur:
        row = await cur.fetchone()
    return None if row is None or row[0] is None else float(row[0])


async def purge(conn: aiosqlite.Connection, *, before: float) -> int:
    """Drop delivered and failed alerts of events older than ``before`` (the audit
    retention: the entries they point to are purged then too). Pending ones stay."""
    await conn.execute("BEGIN IMMEDIATE")
    try:
        cur = await conn.execute(
            "DELETE FROM _ht_alert_outbox WHERE state != 'pending' AND ts < ?", (before,)
        )
        count = cur.rowcount
    except BaseException:
        await conn.rollback()
        raise
    await conn.commit()
    return count
