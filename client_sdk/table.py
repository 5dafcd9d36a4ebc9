"""A table handle: a subscribed, always-converging local replica plus edit methods.

Cells go in and come out by column *name* (or id: ids win when a name equals another
column's id), read through the table's current columns, so a rename shows at once::

    people = await client.get_or_create_table("People", [("Name", "text"), ("Age", "number")])
    ids = await people.insert_many([{"Name": "Ada", "Age": 36}, {"Name": "Alan", "Age": 41}])
    await people.rename_column("Age", "Years")
    people.records()            # [Record('…', {'Name': 'Ada', 'Years': 36}), …]
    async for event in people.row_changes():   # RowEvent(kind='updated', changed=('Years',) …)
        ...

Schema helpers (``add_column``, ``rename_column``, ``drop_column``, ``set_formula``,
``rename``, ``drop``) need the ``schema:write`` scope; the rest ``tables:write``.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from client_sdk.bulk import matching_ids
from client_sdk.names import column_id_for
from client_sdk.records import Record, RowEvent, apply_with_events
from client_sdk.replica import Replica
from protocol.limits import MAX_FRAME_BYTES, MAX_OPS_PER_BATCH, MAX_ROWS_PER_OP
from protocol.messages import Change, Snapshot
from protocol.ops import (
    AddColumn,
    ColumnDef,
    ColumnType,
    DeleteRows,
    DropColumn,
    DropTable,
    InsertRows,
    MoveRow,
    NewRow,
    Op,
    RenameColumn,
    RenameTable,
    Row,
    SetFormula,
    UpdateCells,
)

if TYPE_CHECKING:
    from client_sdk.client import Client

T = TypeVar("T")

BATCH_BYTES = MAX_FRAME_BYTES // 2
"""Bulk helpers split their work into batches of about this many encoded bytes."""

_size = msgspec.msgpack.Encoder()


def new_id() -> str:
    """A fresh random row (or table, op) id."""
    return secrets.token_urlsafe(12)


def chunked_batches(
    ops: Iterable[Op], *, max_bytes: int = BATCH_BYTES, max_ops: int = MAX_OPS_PER_BATCH
) -> list[list[Op]]:
    """Group ops into batches under ``max_bytes`` (encoded) and ``max_ops`` ops each."""
    max_ops = max(1, min(max_ops, MAX_OPS_PER_BATCH))
    batches: list[list[Op]] = []
    current: list[Op] = []
    size = 0
    for op in ops:
        cost = len(_size.encode(op))
        if current and (size + cost > max_bytes or len(current) >= max_ops):
            batches.append(current)
            current, size = [], 0
        current.append(op)
        size += cost
    if current:
        batches.append(current)
    return batches


class Table:
    """A subscribed table. Get one with ``await client.table(name)``.

    ``rows`` (id -> values keyed by column id) and :meth:`records` (by column name) follow
    the server as changes arrive; each edit method returns after the server acknowledged
    the batch as durable, with the replica already showing it.
    """

    def __init__(self, client: Client, table_id: str) -> None:
        self._client = client
        self.replica = Replica(table_id)
        self.live = asyncio.Event()
        self._listeners: list[asyncio.Queue[Change | None]] = []  # feeds of changes()
        self._row_listeners: list[asyncio.Queue[RowEvent | None]] = []

    @property
    def id(self) -> str:
        """The table's id."""
        return self.replica.id

    @property
    def name(self) -> str:
        """The table's current name."""
        return self.replica.name

    @property
    def version(self) -> int:
        """The last version applied to the replica."""
        return self.replica.version

    @property
    def rows(self) -> dict[str, dict[str, Any]]:
        """Row id -> values (by column id)."""
        return self.replica.rows

    @property
    def columns(self) -> list[ColumnDef]:
        """The current columns, in table order."""
        return list(self.replica.columns.values())

    def ordered_rows(self) -> list[Row]:
        """Rows in table order (values by column id)."""
        return self.replica.ordered()

    def records(self) -> list[Record]:
        """Rows in table order, cells by current column name."""
        columns = self.replica.columns
        return [Record.of(row.id, row.values, columns) for row in self.replica.ordered()]

    def record(self, row_id: str) -> Record | None:
        """One row by id, cells by current column name (None if there is no such row)."""
        cells = self.replica.rows.get(row_id)
        return Record.of(row_id, cells, self.replica.columns) if cells is not None else None

    def column_id(self, column: str) -> str:
        """A column's id from its id or current name (``KeyError`` if neither)."""
        cid = self.replica.column_id(column)
        if cid not in self.replica.columns:
            raise KeyError(f"no column {column!r} in table {self.name!r}")
        return cid

    # --- edits ----------------------------------------------------------------------------

    def _values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {self.replica.column_id(k): v for k, v in values.items()}

    async def apply(self, ops: list[Op]) -> int:
        """Apply a batch atomically; returns its version."""
        return await self._client.apply(self.id, ops)

    async def insert(
        self,
        values: Mapping[str, Any],
        *,
        row_id: str | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> str:
        """Insert a row (values by column name or id); returns its id."""
        rid = row_id or new_id()
        row = NewRow(id=rid, values=self._values(values), after=after, before=before)
        await self.apply([InsertRows(rows=[row])])
        return rid

    async def insert_many(self, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """Insert rows at the end, in order (values by column name or id); their ids.

        Atomic when they fit one batch (about 512 KiB encoded); larger inputs go in several
        batches, each atomic, applied in order.
        """
        made = [NewRow(id=new_id(), values=self._values(values)) for values in rows]
        ops: list[Op] = [
            InsertRows(rows=made[i : i + MAX_ROWS_PER_OP])
            for i in range(0, len(made), MAX_ROWS_PER_OP)
        ]
        for batch in chunked_batches(_split_large(ops), max_ops=self._client.batch_ops):
            await self.apply(batch)
        return [row.id for row in made if row.id is not None]

    async def update(self, row_id: str, values: Mapping[str, Any]) -> int:
        """Set cells of a row (by column name or id); returns the version."""
        return await self.apply([UpdateCells(row=row_id, values=self._values(values))])

    async def update_many(self, updates: Mapping[str, Mapping[str, Any]]) -> int:
        """Set cells of several rows (row id -> values) in as few atomic batches as fit;
        returns the last version (the current one when ``updates`` is empty)."""
        ops: list[Op] = [
            UpdateCells(row=rid, values=self._values(values)) for rid, values in updates.items()
        ]
        version = self.version
        for batch in chunked_batches(ops, max_ops=self._client.batch_ops):
            version = await self.apply(batch)
        return version

    async def update_where(
        self, where: Mapping[str, Any], values: Mapping[str, Any], *, max_rows: int | None = None
    ) -> int:
        """Set cells of every row matching a server-side filter (``{"op": "eq", ...}``, see
        docs/sdk.md); how many. ``TooManyRows`` (nothing changed) past ``max_rows``."""
        ids = await matching_ids(self._client, self.id, dict(where), cap=max_rows)
        await self.update_many(dict.fromkeys(ids, values))
        return len(ids)

    async def delete_where(self, where: Mapping[str, Any], *, max_rows: int | None = None) -> int:
        """Delete every row matching a server-side filter; how many (``TooManyRows`` past
        ``max_rows``, nothing deleted)."""
        ids = await matching_ids(self._client, self.id, dict(where), cap=max_rows)
        if ids:
            await self.delete(*ids)
        return len(ids)

    async def delete(self, *row_ids: str) -> int:
        """Delete rows; returns the version."""
        ops: list[Op] = [
            DeleteRows(rows=list(row_ids[i : i + MAX_ROWS_PER_OP]))
            for i in range(0, len(row_ids), MAX_ROWS_PER_OP)
        ]
        version = self.version
        for batch in chunked_batches(ops, max_ops=self._client.batch_ops):
            version = await self.apply(batch)
        return version

    async def move(
        self, row_id: str, *, after: str | None = None, before: str | None = None
    ) -> int:
        """Move a row next to another (or to the end)."""
        return await self.apply([MoveRow(row=row_id, after=after, before=before)])

    # --- schema ---------------------------------------------------------------------------

    async def add_column(
        self,
        name: str,
        type: str | ColumnType = ColumnType.TEXT,
        *,
        formula: str | None = None,
        column_id: str | None = None,
    ) -> str:
        """Add a column (``formula`` makes it a formula column); returns its id."""
        kind = ColumnType.FORMULA if formula is not None else ColumnType(type)
        cid = column_id or column_id_for(name, self.replica.columns)
        await self.apply(
            [AddColumn(column=ColumnDef(id=cid, name=name, type=kind, formula=formula))]
        )
        return cid

    async def rename_column(self, column: str, new_name: str) -> int:
        """Rename a column (by name or id); formulas that use it keep working."""
        return await self.apply([RenameColumn(column=self.column_id(column), name=new_name)])

    async def drop_column(self, column: str) -> int:
        """Drop a column (by name or id) and its values."""
        return await self.apply([DropColumn(column=self.column_id(column))])

    async def set_formula(self, column: str, formula: str) -> int:
        """Set a formula column's formula (by name or id); values are recomputed."""
        return await self.apply([SetFormula(column=self.column_id(column), formula=formula)])

    async def rename(self, new_name: str) -> int:
        """Rename the table."""
        return await self.apply([RenameTable(name=new_name)])

    async def drop(self) -> int:
        """Drop the table (its id is never reused)."""
        return await self.apply([DropTable()])

    # --- following ------------------------------------------------------------------------

    def changes(self) -> Feed[Change]:
        """Every change applied to the replica from this call on, in version order."""
        return Feed(self._listeners)

    def row_changes(self) -> Feed[RowEvent]:
        """What each change from this call on did to each row: ``inserted`` / ``updated``
        / ``deleted`` events with cells by column name, in version order."""
        return Feed(self._row_listeners)

    async def set_presence(self, state: Mapping[str, Any]) -> None:
        """Share ephemeral state (cursor, selection) with the table's other subscribers.

        Not stored and not acknowledged; others receive it on ``client.presence_events``.
        """
        await self._client.send_presence(self.id, dict(state))

    async def unsubscribe(self) -> None:
        """Stop following the table."""
        await self._client.unsubscribe(self)

    # --- fed by the client ----------------------------------------------------------------

    def _snapshot(self, message: Snapshot, first: bool) -> None:
        if first:
            self.replica.reset(message.table)
        self.replica.load(message.rows)

    def _change(self, change: Change) -> None:
        events = apply_with_events(self.replica, change)
        if events is None:
            return
        for queue in self._listeners:
            queue.put_nowait(change)
        for row_queue in self._row_listeners:
            for event in events:
                row_queue.put_nowait(event)

    def _ended(self) -> None:
        for queue in self._listeners:
            queue.put_nowait(None)
        for row_queue in self._row_listeners:
            row_queue.put_nowait(None)


class Feed(AsyncIterator[T]):
    """An async iterator of a table's events, listening from its creation on (not from the
    first ``__anext__``), so nothing committed in between is missed. Ends when the table
    is unsubscribed or the client closes; ``aclose`` stops listening early, and so does
    dropping the feed (a loop left with ``break`` queues nothing forever)."""

    def __init__(self, listeners: list[asyncio.Queue[T | None]]) -> None:
        self._queue: asyncio.Queue[T | None] = asyncio.Queue()
        self._listeners = listeners
        listeners.append(self._queue)
        self._done = False

    def __aiter__(self) -> Feed[T]:
        return self

    async def __anext__(self) -> T:
        if self._done:
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            await self.aclose()
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Stop listening (idempotent)."""
        self._stop()

    def _stop(self) -> None:
        if not self._done:
            self._done = True
            self._listeners.remove(self._queue)

    def __del__(self) -> None:
        self._stop()


def _split_large(ops: list[Op]) -> list[Op]:
    """Split insert ops whose encoding alone exceeds a batch into smaller ones."""
    out: list[Op] = []
    for op in ops:
        if isinstance(op, InsertRows) and len(op.rows) > 1 and len(_size.encode(op)) > BATCH_BYTES:
            half = len(op.rows) // 2
            out.extend(
                _split_large([InsertRows(rows=op.rows[:half]), InsertRows(rows=op.rows[half:])])
            )
        else:
            out.append(op)
    return out
