"""The async SQL connection that feature code writes through, as a Protocol.

It is the part of aiosqlite's ``Connection`` that features use (secrets, the audit log,
webhooks). It lives at the bottom of the tree so that low-level packages such as
``server.audit`` can name it without importing the store. ``server.store.asyncconn``
holds the writer job's implementation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterable
from typing import Any, Protocol


class AsyncCursor(Protocol):
    """The cursor side of :class:`AsyncConnection`."""

    @property
    def rowcount(self) -> int:
        """Rows changed by the statement (sqlite3's ``rowcount``)."""

    @property
    def lastrowid(self) -> int | None:
        """The rowid of the last inserted row."""

    async def fetchone(self) -> Any:
        """The next row, or None."""

    async def fetchmany(self, size: int | None = None) -> Iterable[Any]:
        """Up to ``size`` more rows."""

    async def fetchall(self) -> Iterable[Any]:
        """Every remaining row."""

    async def close(self) -> None:
        """Release the cursor."""

    def __aiter__(self) -> AsyncIterator[Any]:
        """Rows, one by one."""


class CursorResult(Protocol):
    """What ``execute`` returns: awaitable, or usable as ``async with ... as cursor``."""

    def __await__(self) -> Generator[Any, None, AsyncCursor]: ...

    async def __aenter__(self) -> AsyncCursor: ...

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any, /) -> Any: ...


class AsyncConnection(Protocol):
    """An async connection in autocommit mode (``BEGIN`` explicitly): aiosqlite's, or a
    writer job's."""

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open."""

    @property
    def isolation_level(self) -> str | None:
        """None in autocommit mode."""

    def execute(self, sql: str, parameters: Iterable[Any] | None = None, /) -> CursorResult:
        """Run one statement."""

    async def commit(self) -> None:
        """Commit the open transaction."""

    async def rollback(self) -> None:
        """Roll back the open transaction."""
