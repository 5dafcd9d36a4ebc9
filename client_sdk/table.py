"""A table handle: a subscribed, always-converging local replica plus edit methods."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from client_sdk.replica import Replica
from protocol.messages import Change, Snapshot
from protocol.ops import DeleteRows, InsertRows, MoveRow, NewRow, Op, Row, UpdateCells

if TYPE_CHECKING:
    from client_sdk.client import Client


def new_id() -> str:
    """A fresh random row (or table, op) id."""
    return secrets.token_urlsafe(12)


class Table:
    """A subscribed table. Get one with ``await client.table(name)``.

    ``rows`` (id -> values keyed by column id) follows the server as changes arrive; each
    edit method returns after the server acknowledged the batch as durable, with the
    replica already showing it.
    """

    def __init__(self, client: Client, table_id: str) -> None:
        self._client = client
        self.replica = Replica(table_id)
        self.live = asyncio.Event()
        self._listeners: list[asyncio.Queue[Change | None]] = []

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

    def ordered_rows(self) -> list[Row]:
        """Rows in table order."""
        return self.replica.ordered()

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

    async def update(self, row_id: str, values: Mapping[str, Any]) -> int:
        """Set cells of a row; returns the version."""
        return await self.apply([UpdateCells(row=row_id, values=self._values(values))])

    async def delete(self, *row_ids: str) -> int:
        """Delete rows; returns the version."""
        return await self.apply([DeleteRows(rows=list(row_ids))])

    async def move(
        self, row_id: str, *, after: str | None = None, before: str | None = None
    ) -> int:
        """Move a row next to another (or to the end)."""
        return await self.apply([MoveRow(row=row_id, after=after, before=before)])

    async def changes(self) -> AsyncIterator[Change]:
        """Every change applied to the replica from now on, in version order."""
        queue: asyncio.Queue[Change | None] = asyncio.Queue()
        self._listeners.append(queue)
        try:
            while True:
                change = await queue.get()
                if change is None:
                    return
                yield change
        finally:
            self._listeners.remove(queue)

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
        if self.replica.apply(change):
            for queue in self._listeners:
                queue.put_nowait(change)

    def _ended(self) -> None:
        for queue in self._listeners:
            queue.put_nowait(None)
