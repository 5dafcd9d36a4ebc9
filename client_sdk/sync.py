"""The synchronous client, for scripts and notebooks: no asyncio in user code.

    from client_sdk import SyncClient

    with SyncClient.connect("ws://127.0.0.1:8765/v1/ws", api_key=KEY) as client:
        people = client.get_or_create_table("People", [("Name", "text"), ("Age", "number")])
        ada = people.insert({"Name": "Ada", "Age": 36})
        people.update(ada, {"Age": 37})
        print(people.records())

How it works: :class:`SyncClient` owns one event loop running in a background daemon
thread, and an async :class:`~client_sdk.client.Client` living on it. Every method hands a
coroutine to that loop (``run_coroutine_threadsafe``) and blocks for its result, so the
async client's reconnection, resume and exactly-once resend keep working between calls.
Replica reads (``records``, ``rows``) run on the loop thread too, so they never see a
change half applied. It works inside a running loop as well (Jupyter), since the calls
never touch the caller's loop. Exceptions are the async client's own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any, TypeVar

from client_sdk.client import Client, TokenProvider
from client_sdk.pacing import KEEPALIVE_INTERVAL_S
from client_sdk.records import Record, RowEvent
from client_sdk.table import Feed, Table
from protocol.codec import MSGPACK
from protocol.messages import Change, QueryResult, TableInfo
from protocol.ops import ColumnDef, ColumnType, Row

T = TypeVar("T")


class _Portal:
    """An event loop in a daemon thread, and blocking calls into it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="hypertab-sync", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a SyncClient method was called from its own loop thread")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        """Run a plain function on the loop thread (between two changes) and return."""

        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())

    def stop(self) -> None:
        """Stop the loop and its thread (idempotent)."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class SyncFeed(Iterator[T]):
    """A blocking iterator over a table's events (``changes`` / ``row_changes``).

    ``timeout`` (seconds) bounds each wait: ``TimeoutError`` when nothing arrives in time.
    """

    def __init__(self, portal: _Portal, feed: Feed[T], timeout: float | None) -> None:
        self._portal = portal
        self._feed = feed
        self.timeout = timeout

    def __iter__(self) -> SyncFeed[T]:
        return self

    def __next__(self) -> T:
        try:
            return self._portal.run(_next(self._feed), self.timeout)
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        """Stop listening."""
        self._portal.run(self._feed.aclose())


async def _next(feed: AsyncIterator[T]) -> T:
    return await feed.__anext__()


class _Blocking:
    """A namespace of async methods (``client.keys`` ...) made blocking."""

    def __init__(self, portal: _Portal, target: object) -> None:
        self._portal = portal
        self._target = target

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._target, name)
        if not callable(method):
            return method

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self._portal.run(method(*args, **kwargs))

        blocking.__doc__ = method.__doc__
        return blocking


class SyncTable:
    """A subscribed table, blocking. Same methods as :class:`~client_sdk.table.Table`."""

    def __init__(self, portal: _Portal, table: Table) -> None:
        self._portal = portal
        self.table = table
        """The underlying async table (use only from the client's loop)."""

    @property
    def id(self) -> str:
        """The table's id."""
        return self.table.id

    @property
    def name(self) -> str:
        """The table's current name."""
        return self._portal.call(lambda: self.table.name)

    @property
    def version(self) -> int:
        """The last version applied to the replica."""
        return self._portal.call(lambda: self.table.version)

    @property
    def rows(self) -> dict[str, dict[str, Any]]:
        """A copy of row id -> values (by column id)."""
        return self._portal.call(lambda: {k: dict(v) for k, v in self.table.rows.items()})

    @property
    def columns(self) -> list[ColumnDef]:
        """The current columns."""
        return self._portal.call(lambda: self.table.columns)

    def records(self) -> list[Record]:
        """Rows in table order, cells by current column name."""
        return self._portal.call(self.table.records)

    def record(self, row_id: str) -> Record | None:
        """One row by id, cells by current column name."""
        return self._portal.call(lambda: self.table.record(row_id))

    def ordered_rows(self) -> list[Row]:
        """Rows in table order (values by column id)."""
        return self._portal.call(self.table.ordered_rows)

    def column_id(self, column: str) -> str:
        """A column's id from its id or current name."""
        return self._portal.call(lambda: self.table.column_id(column))

    def insert(
        self,
        values: Mapping[str, Any],
        *,
        row_id: str | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> str:
        """Insert a row; returns its id once durable."""
        return self._portal.run(
            self.table.insert(values, row_id=row_id, after=after, before=before)
        )

    def insert_many(self, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """Insert rows at the end, in order; their ids."""
        return self._portal.run(self.table.insert_many(list(rows)))

    def update(self, row_id: str, values: Mapping[str, Any]) -> int:
        """Set cells of a row; returns the version."""
        return self._portal.run(self.table.update(row_id, values))

    def update_many(self, updates: Mapping[str, Mapping[str, Any]]) -> int:
        """Set cells of several rows (row id -> values)."""
        return self._portal.run(self.table.update_many(updates))

    def update_where(
        self, where: Mapping[str, Any], values: Mapping[str, Any], *, max_rows: int | None = None
    ) -> int:
        """Set cells of every row matching a server-side filter; how many."""
        return self._portal.run(self.table.update_where(where, values, max_rows=max_rows))

    def delete_where(self, where: Mapping[str, Any], *, max_rows: int | None = None) -> int:
        """Delete every row matching a server-side filter; how many."""
        return self._portal.run(self.table.delete_where(where, max_rows=max_rows))

    def delete(self, *row_ids: str) -> int:
        """Delete rows; returns the version."""
        return self._portal.run(self.table.delete(*row_ids))

    def move(self, row_id: str, *, after: str | None = None, before: str | None = None) -> int:
        """Move a row next to another (or to the end)."""
        return self._portal.run(self.table.move(row_id, after=after, before=before))

    def add_column(
        self,
        name: str,
        type: str | ColumnType = ColumnType.TEXT,
        *,
        formula: str | None = None,
        column_id: str | None = None,
    ) -> str:
        """Add a column; returns its id."""
        return self._portal.run(
            self.table.add_column(name, type, formula=formula, column_id=column_id)
        )

    def rename_column(self, column: str, new_name: str) -> int:
        """Rename a column (by name or id)."""
        return self._portal.run(self.table.rename_column(column, new_name))

    def drop_column(self, column: str) -> int:
        """Drop a column (by name or id)."""
        return self._portal.run(self.table.drop_column(column))

    def set_formula(self, column: str, formula: str) -> int:
        """Set a formula column's formula."""
        return self._portal.run(self.table.set_formula(column, formula))

    def rename(self, new_name: str) -> int:
        """Rename the table."""
        return self._portal.run(self.table.rename(new_name))

    def drop(self) -> int:
        """Drop the table."""
        return self._portal.run(self.table.drop())

    def changes(self, *, timeout: float | None = None) -> SyncFeed[Change]:
        """Every change from this call on, blocking (see :class:`SyncFeed`)."""
        return SyncFeed(self._portal, self._portal.call(self.table.changes), timeout)

    def row_changes(self, *, timeout: float | None = None) -> SyncFeed[RowEvent]:
        """Row events from this call on, blocking (see :class:`SyncFeed`)."""
        return SyncFeed(self._portal, self._portal.call(self.table.row_changes), timeout)

    def unsubscribe(self) -> None:
        """Stop following the table."""
        self._portal.run(self.table.unsubscribe())

    def __repr__(self) -> str:
        return f"SyncTable(id={self.id!r})"


class SyncClient:
    """A blocking Hypertab client. Create with :meth:`connect`; close with :meth:`close`
    or a ``with`` block. ``keys``, ``secrets`` and ``functions`` are the async client's,
    made blocking."""

    def __init__(self, portal: _Portal, client: Client) -> None:
        self._portal = portal
        self.client = client
        """The underlying async client (use only from its loop)."""
        self.keys: Any = _Blocking(portal, client.keys)
        self.secrets: Any = _Blocking(portal, client.secrets)
        self.functions: Any = _Blocking(portal, client.functions)
        self._tables: dict[str, SyncTable] = {}

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        token_provider: TokenProvider | None = None,
        encoding: str = MSGPACK,
        client_id: str | None = None,
        reconnect: bool = True,
        max_backoff: float = 5.0,
        keepalive_interval: float | None = KEEPALIVE_INTERVAL_S,
    ) -> SyncClient:
        """Connect and authenticate, like :meth:`Client.connect`."""
        portal = _Portal()
        try:
            client = portal.run(
                Client.connect(
                    url,
                    api_key=api_key,
                    token_provider=token_provider,
                    encoding=encoding,
                    client_id=client_id,
                    reconnect=reconnect,
                    max_backoff=max_backoff,
                    keepalive_interval=keepalive_interval,
                )
            )
        except BaseException:
            portal.stop()
            raise
        return cls(portal, client)

    def close(self) -> None:
        """Close the connection and stop the background loop. Idempotent."""
        if self._portal.loop.is_closed():
            return
        try:
            self._portal.run(self.client.close())
        finally:
            self._portal.stop()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wrap(self, table: Table) -> SyncTable:
        wrapped = self._tables.get(table.id)
        if wrapped is None or wrapped.table is not table:
            wrapped = self._tables[table.id] = SyncTable(self._portal, table)
        return wrapped

    @property
    def welcome(self) -> Any:
        """The server's ``welcome`` (tenant, subject, scopes, limits)."""
        return self.client.welcome

    def create_table(
        self,
        name: str,
        columns: Iterable[ColumnDef | tuple[str, str] | tuple[str, str, str]] = (),
        *,
        table_id: str | None = None,
    ) -> SyncTable:
        """Create a table and return it subscribed."""
        return self._wrap(
            self._portal.run(self.client.create_table(name, list(columns), table_id=table_id))
        )

    def get_or_create_table(
        self,
        name: str,
        columns: Iterable[ColumnDef | tuple[str, str] | tuple[str, str, str]] = (),
    ) -> SyncTable:
        """The table called ``name``, subscribed; created with ``columns`` if missing."""
        return self._wrap(self._portal.run(self.client.get_or_create_table(name, list(columns))))

    def table(self, name_or_id: str) -> SyncTable:
        """Subscribe to a table (by id, else by name)."""
        return self._wrap(self._portal.run(self.client.table(name_or_id)))

    def list_tables(self) -> list[TableInfo]:
        """The tenant's tables (those this credential may see)."""
        return self._portal.run(self.client.list_tables())

    def query(
        self,
        table: str,
        *,
        where: Mapping[str, Any] | None = None,
        order_by: Sequence[str | tuple[str, bool]] = (),
        columns: Sequence[str] | None = None,
        limit: int = 500,
        after: str | None = None,
    ) -> QueryResult:
        """One page of a server-side query (see :meth:`Client.query`)."""
        return self._portal.run(
            self.client.query(
                table, where=where, order_by=order_by, columns=columns, limit=limit, after=after
            )
        )

    def query_all(
        self,
        table: str,
        *,
        where: Mapping[str, Any] | None = None,
        order_by: Sequence[str | tuple[str, bool]] = (),
        columns: Sequence[str] | None = None,
        page_size: int = 500,
    ) -> Iterator[Row]:
        """Every row a query matches, fetched a page at a time as you iterate."""
        rows = self.client.query_all(
            table, where=where, order_by=order_by, columns=columns, page_size=page_size
        )
        while True:
            try:
                yield self._portal.run(_next(rows))
            except StopAsyncIteration:
                return

    def ping(self) -> None:
        """Round trip to the server."""
        self._portal.run(self.client.ping())
