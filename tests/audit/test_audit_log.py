"""The SQLite audit log on real database files: transactions, tampering, export, retention."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from server.audit import (
    Action,
    AuditEntry,
    AuditTamperedError,
    AuditWriteError,
    append,
    ensure_schema,
    export,
    export_lines,
    head,
    purge,
    purge_expired,
    verify,
    verify_db,
)
from server.audit.export import parse

DAY = 86_400.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "tenant.db"


@pytest.fixture
async def conn(db_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    async with aiosqlite.connect(db_path) as c:
        await ensure_schema(c)
        await ensure_schema(c)  # idempotent
        await c.execute("CREATE TABLE keys (id TEXT PRIMARY KEY)")
        await c.commit()
        yield c


def entry(i: int, ts: float | None = None) -> AuditEntry:
    return AuditEntry(
        ts=1_000.0 + i if ts is None else ts,
        actor="t1/alice",
        action=Action.KEY_CREATED,
        target=f"k_{i}",
        ip="192.0.2.1",
        details={"scopes": ["tables:read"], "i": i},
    )


async def fill(conn: aiosqlite.Connection, n: int) -> None:
    for i in range(1, n + 1):
        await append(conn, entry(i), commit=True)


def file_bytes(path: Path) -> bytes:
    return path.read_bytes()


def tamper(path: Path, sql: str, *params: object) -> None:
    """Change the file behind the application's back, as an attacker with disk access would."""
    with sqlite3.connect(path) as raw:
        raw.execute(sql, params)


async def test_action_and_entry_commit_together(conn: aiosqlite.Connection) -> None:
    await conn.execute("INSERT INTO keys VALUES ('k_1')")
    chained = await append(conn, entry(1), commit=False)
    assert chained.id == 1
    await conn.commit()
    async with conn.execute("SELECT count(*) FROM keys") as cur:
        assert (await cur.fetchone()) == (1,)
    assert (await head(conn)).last_hash == chained.hash
    assert await verify_db(conn) is None


async def test_failed_append_rolls_back_the_callers_action(
    conn: aiosqlite.Connection, db_path: Path
) -> None:
    await fill(conn, 2)
    # Make the next append fail inside SQLite, after the caller's action is written.
    await conn.execute(
        "CREATE TRIGGER no_more BEFORE INSERT ON _ht_audit_log "
        "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    )
    await conn.commit()
    await conn.execute("INSERT INTO keys VALUES ('k_evil')")
    with pytest.raises(AuditWriteError):
        await append(conn, entry(3), commit=False)
    await conn.commit()  # even a careless caller that commits anyway commits nothing
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("SELECT count(*) FROM keys").fetchone() == (0,)
        assert raw.execute("SELECT count(*) FROM _ht_audit_log").fetchone() == (2,)
    assert await verify_db(conn) is None


async def test_rollback_by_caller_drops_the_entry(conn: aiosqlite.Connection) -> None:
    await fill(conn, 1)
    await conn.execute("INSERT INTO keys VALUES ('k_2')")
    await append(conn, entry(2), commit=False)
    await conn.rollback()
    assert (await head(conn)).last_id == 1
    assert (await append(conn, entry(2), commit=True)).id == 2
    assert await verify_db(conn) is None


async def test_secrets_never_stored(conn: aiosqlite.Connection, db_path: Path) -> None:
    await append(
        conn,
        AuditEntry(
            1.0,
            "anonymous",
            Action.AUTH_FAILED,
            ip="192.0.2.9",
            details={"token": "ht_live_s3cret", "reason": "bad Bearer ht_live_s3cret"},
        ),
        commit=True,
    )
    assert b"s3cret" not in file_bytes(db_path)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_export_round_trips(conn: aiosqlite.Connection, fmt: str) -> None:
    await fill(conn, 5)
    await append(
        conn,
        AuditEntry(1_010.0, "system", Action.EXPORT, 't,1\n"x"', None, {"multi\nline": "é"}),
        commit=True,
    )
    text = await export(conn, fmt=fmt)  # type: ignore[arg-type]
    back = parse(text, fmt)  # type: ignore[arg-type]
    assert [e.id for e in back] == [1, 2, 3, 4, 5, 6]
    assert back[5].target == 't,1\n"x"' and back[5].ip is None
    assert verify(back) is None
    lines = [line async for line in export_lines(conn, fmt=fmt)]  # type: ignore[arg-type]
    assert "".join(lines) == text
    since = parse(await export(conn, since=1_003.0, fmt=fmt), fmt)  # type: ignore[arg-type]
    assert [e.id for e in since] == [3, 4, 5, 6]
    assert verify(since, anchor=None, first_id=None) is None


async def test_edit_in_file_is_reported(conn: aiosqlite.Connection, db_path: Path) -> None:
    await fill(conn, 6)
    tamper(db_path, "UPDATE _ht_audit_log SET actor = 't1/mallory' WHERE id = 4")
    assert await verify_db(conn) == 4


async def test_deletion_in_file_is_reported(conn: aiosqlite.Connection, db_path: Path) -> None:
    await fill(conn, 6)
    tamper(db_path, "DELETE FROM _ht_audit_log WHERE id = 3")
    assert await verify_db(conn) == 3


async def test_truncated_end_is_reported(conn: aiosqlite.Connection, db_path: Path) -> None:
    await fill(conn, 6)
    tamper(db_path, "DELETE FROM _ht_audit_log WHERE id >= 5")
    assert await verify_db(conn) == 5


async def test_reorder_in_file_is_reported(conn: aiosqlite.Connection, db_path: Path) -> None:
    await fill(conn, 6)
    tamper(db_path, "UPDATE _ht_audit_log SET id = -1 WHERE id = 2")
    tamper(db_path, "UPDATE _ht_audit_log SET id = 2 WHERE id = 3")
    tamper(db_path, "UPDATE _ht_audit_log SET id = 3 WHERE id = -1")
    assert await verify_db(conn) == 2


async def test_entry_written_around_append_is_reported(
    conn: aiosqlite.Connection, db_path: Path
) -> None:
    await fill(conn, 3)
    tamper(
        db_path,
        "INSERT INTO _ht_audit_log VALUES (4, 1.0, 'x', 'export', '', NULL, '{}', 'a', 'b')",
    )
    assert await verify_db(conn) == 4


async def test_purge_keeps_the_chain_verifiable(conn: aiosqlite.Connection) -> None:
    for i in range(1, 11):
        await append(conn, entry(i, ts=i * DAY), commit=True)
    assert await purge_expired(conn, now=95 * DAY) == 4  # 90 days: ts < 5 days goes
    h = await head(conn)
    assert (h.anchor_id, h.last_id) == (4, 10)
    assert await verify_db(conn) is None
    assert await purge(conn, older_than=0.0) == 0
    await append(conn, entry(11, ts=11 * DAY), commit=True)
    assert await verify_db(conn) is None
    # Exported after a purge: verifies from the anchor the head records.
    back = parse(await export(conn), "jsonl")
    assert verify(back, anchor=h.anchor_hash, first_id=5) is None


async def test_purge_deletes_only_a_prefix(conn: aiosqlite.Connection) -> None:
    for i, ts in enumerate([1.0, 2.0, 500.0, 3.0, 4.0], start=1):
        await append(conn, entry(i, ts=ts), commit=True)
    # Entry 4 is old but sits after a recent one: deleting it would punch a hole.
    assert await purge(conn, older_than=100.0) == 2
    assert (await head(conn)).anchor_id == 2
    assert await verify_db(conn) is None


async def test_purge_refuses_to_erase_tampering(conn: aiosqlite.Connection, db_path: Path) -> None:
    await fill(conn, 6)
    tamper(db_path, "UPDATE _ht_audit_log SET target = 'x' WHERE id = 2")
    with pytest.raises(AuditTamperedError) as info:
        await purge(conn, older_than=2_000.0)
    assert info.value.entry_id == 2
    async with conn.execute("SELECT count(*) FROM _ht_audit_log") as cur:
        assert (await cur.fetchone()) == (6,)


async def test_control_db_and_tenant_db_chains_are_independent(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "a.db") as a, aiosqlite.connect(tmp_path / "b.db") as b:
        for c in (a, b):
            await ensure_schema(c)
        await append(a, entry(1), commit=True)
        await append(a, entry(2), commit=True)
        assert (await append(b, entry(1), commit=True)).id == 1
        assert await verify_db(a) is None and await verify_db(b) is None
