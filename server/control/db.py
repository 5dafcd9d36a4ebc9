"""The control plane's connection to ``control.db`` and its write transactions.

``ControlDb.open`` opens ``data_dir/control.db`` (WAL, ``synchronous=FULL``: revocations
must survive a crash) on one aiosqlite connection in autocommit mode and creates the
tables of the control plane, the control audit log and the alert outbox. Every write is an
explicit ``BEGIN IMMEDIATE`` transaction under an asyncio lock (:meth:`ControlDb.
transaction`), so coroutines never share a half-done transaction; reads take no lock.
Other modules keep their own tables in the same file through their own connections (or
through this transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import aiosqlite

from server.alerts.schema import ensure_schema as ensure_alert_schema
from server.audit.log import ensure_schema as ensure_audit_schema
from server.control.schema import ensure_schema
from server.private import private_database, private_directory

CONTROL_DB_NAME = "control.db"


def _prepare_files(data_dir: Path, path: Path) -> None:
    # control.db holds every tenant's keys (hashed) and the control audit log: owner only,
    # like the tenant databases, its -wal and -shm included.
    private_directory(data_dir)
    private_database(path)


def chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    """``items`` in slices of at most ``size``: one ``IN (?, ...)`` read per slice stays
    under SQLite's bound-parameter limit."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ControlDb:
    """One aiosqlite connection to ``control.db``; create with :meth:`open`, then
    :meth:`close`."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        """Use :meth:`open`."""
        self.conn = conn
        self.path = path
        self.lock = asyncio.Lock()
        """Held by every write on :attr:`conn` (transactions, bookkeeping updates)."""
        self.closed = False

    @classmethod
    async def open(cls, data_dir: Path) -> ControlDb:
        """Open (creating if needed) ``data_dir/control.db`` with every control table."""
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
        return cls(conn, path)

    def check_open(self) -> None:
        """Raise ``RuntimeError`` once closed."""
        if self.closed:
            raise RuntimeError("control plane is closed")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction on the connection, under :attr:`lock`.

        Commits on success, rolls back on any error.
        """
        self.check_open()
        async with self.lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await self.conn.rollback()
                raise
            await self.conn.commit()

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Rows of one read statement (no write lock taken); ``sql`` must be a constant."""
        self.check_open()
        async with self.conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        if self.closed:
            return
        self.closed = True
        await self.conn.close()
