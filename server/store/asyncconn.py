"""The async SQL connection features write through, and a writer job's view of one.

Features that keep tables of their own in a tenant database (secrets, the audit log,
webhooks) are written as async code against :class:`AsyncConnection`, the part of
aiosqlite's ``Connection`` they use. The CLI hands them an ``aiosqlite.Connection`` of its
own; the hub hands them a :class:`JobConnection` from ``TenantStore.exclusive()``: each
statement runs in the tenant writer's thread, and only while the job holds the writer
(after the job it refuses every call), so no feature ever holds the writer's connection
outside its turn on the writer's queue.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from typing import Any, TypeVar

from server.sqlconn import AsyncConnection, AsyncCursor, CursorResult
from server.store.sqlthread import SqliteThread

__all__ = ["AsyncConnection", "AsyncCursor", "CursorResult", "JobConnection", "JobEnded"]

T = TypeVar("T")


class JobEnded(RuntimeError):
    """A :class:`JobConnection` was used after its job ended (a bug of the caller)."""


class _Cursor:
    """A job's cursor: its rows were fetched in the writer thread with the statement."""

    def __init__(self, rows: list[Any], rowcount: int, lastrowid: int | None) -> None:
        self._rows = rows
        self._at = 0
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    async def fetchone(self) -> Any:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = 1 if size is None else size
        rows = self._rows[self._at : self._at + count]
        self._at += len(rows)
        return rows

    async def fetchall(self) -> list[Any]:
        rows = self._rows[self._at :]
        self._at = len(self._rows)
        return rows

    async def close(self) -> None:
        self._at = len(self._rows)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while self._at < len(self._rows):
            self._at += 1
            yield self._rows[self._at - 1]


class _Result:
    __slots__ = ("_cursor", "_pending")

    def __init__(self, pending: Any) -> None:
        self._pending = pending
        self._cursor: _Cursor | None = None

    def __await__(self) -> Generator[Any, None, AsyncCursor]:
        cursor: _Cursor = yield from self._pending.__await__()
        return cursor

    async def __aenter__(self) -> AsyncCursor:
        self._cursor = await self._pending
        return self._cursor

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any, /) -> None:
        if self._cursor is not None:
            await self._cursor.close()


def _run(conn: sqlite3.Connection, sql: str, parameters: Iterable[Any]) -> _Cursor:
    cursor = conn.execute(sql, tuple(parameters))
    try:
        # Every row at once, in the thread: the statement is finished (and its locks are
        # released) before the job's next step, and a fetch costs no further hop.
        rows = cursor.fetchall() if cursor.description is not None else []
        return _Cursor(rows, cursor.rowcount, cursor.lastrowid)
    finally:
        cursor.close()


def _stated(
    conn: sqlite3.Connection, fn: Callable[..., Any], args: tuple[Any, ...]
) -> tuple[bool, Any, bool]:
    """``fn``'s result (or exception) and whether a transaction is open after it: one hop."""
    try:
        return True, fn(conn, *args), conn.in_transaction
    except Exception as exc:
        return False, exc, conn.in_transaction


def _commit(conn: sqlite3.Connection) -> None:
    conn.commit()  # nothing when no transaction is open


def _rollback(conn: sqlite3.Connection) -> None:
    conn.rollback()


class JobConnection:
    """The tenant writer's connection as one job sees it: every call runs in the writer
    thread, and only until the job ends (then :class:`JobEnded`)."""

    def __init__(self, thread: SqliteThread) -> None:
        self._thread: SqliteThread | None = thread
        self._in_transaction = False

    def _live(self) -> SqliteThread:
        if self._thread is None:
            raise JobEnded("the writer job has ended: its connection is gone")
        return self._thread

    def end(self) -> None:
        """End the job: every later call raises :class:`JobEnded`."""
        self._thread = None

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (as of this job's last statement)."""
        return self._in_transaction

    @property
    def isolation_level(self) -> str | None:
        """Always None: the writer's connection is in autocommit mode."""
        return None

    def execute(self, sql: str, parameters: Iterable[Any] | None = None, /) -> CursorResult:
        """Run one statement in the writer thread."""
        return _Result(self._call(_run, sql, () if parameters is None else parameters))

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        ok, result, self._in_transaction = await self._live().call(_stated, fn, args)
        if not ok:
            raise result
        value: T = result
        return value

    async def commit(self) -> None:
        """Commit the open transaction (nothing when none is open, like sqlite3's)."""
        await self._call(_commit)

    async def rollback(self) -> None:
        """Roll back the open transaction (nothing when none is open)."""
        await self._call(_rollback)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(sqlite3_connection, *args)`` in the writer thread, within the job."""
        return await self._call(fn, *args)
