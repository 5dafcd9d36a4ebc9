"""The audit log in SQLite: one chained table per database (each tenant's, and control's).

How it works
------------
``_ht_audit_log`` holds the entries (see ``chain.py`` for the hashing); ``_ht_audit_head``
holds one row: the *anchor* (id and hash of the last purged entry, or 0 and the genesis hash)
and the *head* (id and hash of the newest entry). Every write updates both tables in the same
transaction, so:

- :func:`append` runs inside the caller's transaction: the audited action and its entry
  commit together. If the append fails for any reason, it rolls the whole transaction back
  and raises :class:`AuditWriteError`, so the action cannot commit without its entry even if
  the caller ignores the error. With no transaction open it starts one (``BEGIN
  IMMEDIATE``: the write lock is taken before the head is read, so no other connection can
  slip an entry in between).
- :func:`purge` deletes the oldest entries (a prefix of ids, never a hole) and moves the
  anchor to the last deleted entry, so the remaining chain still verifies from the anchor.
  It first verifies the part it deletes and refuses to erase a broken chain.
- :func:`verify_db` checks the chain from the anchor and then the head, which catches
  entries cut off at the end.

The connection is the caller's (a tenant store's single writer, or the control store's);
nothing here opens or closes connections.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator
from typing import Any

from server.audit.chain import (
    GENESIS_HASH,
    AuditEntry,
    AuditError,
    ChainedEntry,
    Verifier,
    link,
)
from server.audit.details import redact_details
from server.audit.export import Format, csv_header, csv_line, jsonl_line
from server.sqlconn import AsyncConnection

DEFAULT_RETENTION_DAYS = 90
"""How long audit entries are kept by default (security records only)."""


def retention_days_from_env() -> float:
    """``HYPERTAB_AUDIT_RETENTION_DAYS`` (default 90)."""
    raw = os.environ.get("HYPERTAB_AUDIT_RETENTION_DAYS")
    days = float(raw) if raw else float(DEFAULT_RETENTION_DAYS)
    if days <= 0:
        raise ValueError("HYPERTAB_AUDIT_RETENTION_DAYS must be positive")
    return days


_COLUMNS = "id, ts, actor, action, target, ip, details, prev_hash, hash"
_BATCH = 1000

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS _ht_audit_log (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        ip TEXT,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS _ht_audit_log_ts ON _ht_audit_log (ts)",
    """
    CREATE TABLE IF NOT EXISTS _ht_audit_head (
        only INTEGER PRIMARY KEY CHECK (only = 1),
        anchor_id INTEGER NOT NULL,
        anchor_hash TEXT NOT NULL,
        last_id INTEGER NOT NULL,
        last_hash TEXT NOT NULL
    )
    """,
)


class AuditWriteError(AuditError):
    """An append or purge failed; the caller's transaction was rolled back."""


class AuditTamperedError(AuditError):
    """The stored chain is broken; ``entry_id`` is the first broken entry."""

    def __init__(self, entry_id: int) -> None:
        super().__init__(f"audit chain broken at entry {entry_id}")
        self.entry_id = entry_id


@dataclasses.dataclass(frozen=True, slots=True)
class Head:
    """The anchor (last purged entry) and the head (newest entry) of a stored chain."""

    anchor_id: int
    anchor_hash: str
    last_id: int
    last_hash: str


async def ensure_schema(conn: AsyncConnection, *, commit: bool = True) -> None:
    """Create the audit tables if missing. Idempotent."""
    for statement in _SCHEMA:
        await conn.execute(statement)
    await conn.execute(
        "INSERT OR IGNORE INTO _ht_audit_head VALUES (1, 0, ?, 0, ?)",
        (GENESIS_HASH, GENESIS_HASH),
    )
    if commit:
        await conn.commit()


async def head(conn: AsyncConnection) -> Head:
    """The stored anchor and head. Publish ``last_hash`` elsewhere to pin the history."""
    async with conn.execute(
        "SELECT anchor_id, anchor_hash, last_id, last_hash FROM _ht_audit_head WHERE only = 1"
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        raise AuditError("audit schema missing: call ensure_schema first")
    return Head(int(row[0]), str(row[1]), int(row[2]), str(row[3]))


async def append(conn: AsyncConnection, entry: AuditEntry, *, commit: bool) -> ChainedEntry:
    """Chain ``entry`` onto the log inside the current transaction.

    ``commit=False`` leaves the transaction open for the caller to commit with its action;
    ``commit=True`` commits it. Details are passed through ``redact_details`` first, so no
    secret-named field or credential-shaped value is stored. On any failure the whole
    transaction is rolled back and :class:`AuditWriteError` is raised.
    """
    try:
        safe = dataclasses.replace(entry, details=redact_details(entry.details))
        if not conn.in_transaction:
            await conn.execute("BEGIN IMMEDIATE")
        current = await head(conn)
        chained = link(current.last_hash, current.last_id + 1, safe)
        await conn.execute(
            f"INSERT INTO _ht_audit_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            _row(chained),
        )
        cur = await conn.execute(
            "UPDATE _ht_audit_head SET last_id = ?, last_hash = ? WHERE only = 1 AND last_id = ?",
            (chained.id, chained.hash, current.last_id),
        )
        if cur.rowcount != 1:
            raise AuditError("the audit head moved during the append")
        if commit:
            await conn.commit()
    except BaseException as exc:
        await _rollback(conn)
        if isinstance(exc, Exception):
            raise AuditWriteError(f"audit append failed: {exc}") from exc
        raise
    return chained


async def entries(
    conn: AsyncConnection,
    since: float | None = None,
    *,
    after: int | None = None,
    limit: int | None = None,
) -> AsyncIterator[ChainedEntry]:
    """Stored entries in id order, read in batches: those with ``ts >= since`` and
    ``id > after`` when given, at most ``limit`` of them (a page of an export)."""
    sql = f"SELECT {_COLUMNS} FROM _ht_audit_log WHERE ts >= ? AND id > ?"  # noqa: S608
    params: tuple[Any, ...] = (
        since if since is not None else float("-inf"),
        after if after is not None else -1,
    )
    sql += " ORDER BY id"
    if limit is not None:
        sql += " LIMIT ?"
        params += (limit,)
    async with conn.execute(sql, params) as cur:
        while rows := await cur.fetchmany(_BATCH):
            for row in rows:
                yield ChainedEntry(
                    id=int(row[0]),
                    ts=float(row[1]),
                    actor=str(row[2]),
                    action=str(row[3]),
                    target=str(row[4]),
                    ip=None if row[5] is None else str(row[5]),
                    details=str(row[6]),
                    prev_hash=str(row[7]),
                    hash=str(row[8]),
                )


async def export_lines(
    conn: AsyncConnection, since: float | None = None, fmt: Format = "jsonl"
) -> AsyncIterator[str]:
    """The export, line by line (for streaming a large log); CSV starts with its header."""
    if fmt not in ("jsonl", "csv"):
        raise AuditError(f"unknown export format {fmt!r}")
    if fmt == "csv":
        yield csv_header()
    async for entry in entries(conn, since):
        yield jsonl_line(entry) if fmt == "jsonl" else csv_line(entry)


async def export(conn: AsyncConnection, since: float | None = None, fmt: Format = "jsonl") -> str:
    """The whole export as one string (``fmt``: ``"jsonl"`` or ``"csv"``)."""
    return "".join([line async for line in export_lines(conn, since, fmt)])


async def verify_db(conn: AsyncConnection) -> int | None:
    """The id of the first broken entry, or ``None`` when the stored chain holds.

    Checks every entry from the anchor, then that the newest entry is the recorded head:
    entries removed from the end are reported by the first missing id.
    """
    h = await head(conn)
    verifier = Verifier(h.anchor_hash, h.anchor_id + 1)
    async for entry in entries(conn):
        if verifier.feed(entry) is not None:
            return verifier.broken
    last_id = verifier.last_id if verifier.last_id is not None else h.anchor_id
    last_hash = verifier.last_hash if verifier.last_hash is not None else h.anchor_hash
    if last_id < h.last_id:
        return last_id + 1
    if last_id > h.last_id:  # written around append(): the head never saw it
        return h.last_id + 1
    if last_hash != h.last_hash:
        return last_id
    return None


async def purge(conn: AsyncConnection, older_than: float, *, commit: bool = True) -> int:
    """Delete the oldest entries with ``ts < older_than``; return how many went.

    Only a prefix of ids is deleted (up to the first entry that is not old enough), and the
    anchor moves to the last deleted entry, so the rest still verifies. The deleted part is
    verified first: a broken chain raises :class:`AuditTamperedError` and nothing is erased.
    """
    try:
        if not conn.in_transaction:
            await conn.execute("BEGIN IMMEDIATE")
        h = await head(conn)
        async with conn.execute(
            "SELECT MIN(id) FROM _ht_audit_log WHERE ts >= ?", (older_than,)
        ) as cur:
            row = await cur.fetchone()
        keep_from = row[0] if row is not None and row[0] is not None else h.last_id + 1
        cut = int(keep_from) - 1
        if cut <= h.anchor_id:
            if commit:
                await conn.commit()
            return 0
        verifier = Verifier(h.anchor_hash, h.anchor_id + 1)
        async for entry in entries(conn):
            if entry.id > cut or verifier.feed(entry) is not None:
                break
        if verifier.broken is not None:
            raise AuditTamperedError(verifier.broken)
        if verifier.last_id != cut or verifier.last_hash is None:
            raise AuditTamperedError(verifier.last_id + 1 if verifier.last_id else h.anchor_id + 1)
        cur = await conn.execute("DELETE FROM _ht_audit_log WHERE id <= ?", (cut,))
        deleted = cur.rowcount
        await conn.execute(
            "UPDATE _ht_audit_head SET anchor_id = ?, anchor_hash = ? WHERE only = 1",
            (cut, verifier.last_hash),
        )
        if commit:
            await conn.commit()
    except BaseException as exc:
        await _rollback(conn)
        if isinstance(exc, AuditError) and not isinstance(exc, AuditWriteError):
            raise
        if isinstance(exc, Exception):
            raise AuditWriteError(f"audit purge failed: {exc}") from exc
        raise
    return deleted


async def purge_expired(
    conn: AsyncConnection, now: float, retention_days: float = DEFAULT_RETENTION_DAYS
) -> int:
    """Apply the retention window: purge entries older than ``retention_days`` before ``now``."""
    return await purge(conn, now - retention_days * 86_400.0)


def _row(entry: ChainedEntry) -> tuple[Any, ...]:
    return (
        entry.id,
        entry.ts,
        entry.actor,
        entry.action,
        entry.target,
        entry.ip,
        entry.details,
        entry.prev_hash,
        entry.hash,
    )


async def _rollback(conn: AsyncConnection) -> None:
    # The original failure is the one worth reporting, not a failed rollback after it.
    with contextlib.suppress(Exception):
        await conn.rollback()
