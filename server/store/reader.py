"""Consistent reads of a tenant database, run in its read-only connection's thread.

Each function reads inside one transaction, so the rows and the version it returns belong
together (WAL gives the reader a snapshot while the writer goes on).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from protocol.messages import Change, Query
from protocol.ops import Row
from server.engine.catalog import TableState, decode_columns
from server.engine.cells import from_stored
from server.store.catalog import load_catalog as load_catalog  # re-exported
from server.store.query import QueryError, QueryPlan, plan_query
from server.store.writer import change_decoder

REPLAY_MAX = 5_000
"""A subscriber further behind than this gets a snapshot instead of a replay."""


@dataclass(frozen=True, slots=True)
class TableRead:
    """A table's state and some of its rows at one version."""

    table: TableState
    rows: list[Row]


def _table(conn: sqlite3.Connection, table_id: str) -> TableState | None:
    found = conn.execute(
        "SELECT id, sql, name, version, dropped, columns FROM _ht_tables WHERE id=?",
        (table_id,),
    ).fetchone()
    if found is None or found[4]:
        return None
    return TableState(found[0], found[2], found[1], found[3], decode_columns(found[5]))


def _rows(table: TableState, fetched: list[tuple[object, ...]]) -> list[Row]:
    columns = table.columns
    rows = []
    for record in fetched:
        values = {}
        for column, value in zip(columns, record[2:], strict=True):
            if value is not None:
                values[column.id] = from_stored(column.type, value)
        rows.append(Row(id=str(record[0]), order=str(record[1]), values=values))
    return rows


def _select(table: TableState) -> str:
    names = "".join(f", {c.sql}" for c in table.columns)
    return f"SELECT _id, _ord{names} FROM {table.sql}"  # noqa: S608 - generated names only


def read_snapshot(conn: sqlite3.Connection, table_id: str) -> TableRead | None:
    """The whole table at its current version, rows in order; None if it does not exist."""
    conn.execute("BEGIN")
    try:
        table = _table(conn, table_id)
        if table is None:
            return None
        fetched = conn.execute(_select(table) + " ORDER BY _ord").fetchall()
        return TableRead(table, _rows(table, fetched))
    finally:
        conn.execute("COMMIT")


@dataclass(frozen=True, slots=True)
class QueryPage:
    """A page of a query: the table as read, the rows, whether more follow."""

    table: TableState
    rows: list[Row]
    more: bool
    plan: QueryPlan
    records: list[tuple[Any, ...]]

    def cursor_after(self, count: int) -> str:
        """The cursor continuing after the first ``count`` rows (count >= 1)."""
        return self.plan.cursor(self.records[count - 1])


QUERY_SECONDS = 2.0
"""Longest a query page may run; the statement is interrupted past it (``query_timeout``).
A page over 100,000 rows takes 20-90 ms (bench/query.py), so this only stops queries whose
cost is out of proportion: a long scan of long text, on the connection every read of the
tenant shares (and, for the case-folding function, the interpreter's lock)."""

_PROGRESS_STEPS = 1000
"""SQLite VM instructions between two checks of the clock."""


def _run_bounded(conn: sqlite3.Connection, plan: QueryPlan) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + QUERY_SECONDS
    conn.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_STEPS)
    try:
        return conn.execute(plan.sql, plan.params).fetchall()
    except sqlite3.OperationalError as exc:
        if time.monotonic() <= deadline:
            raise
        raise QueryError(
            "query_timeout",
            f"the page took over {QUERY_SECONDS:g} s; narrow the filter (scan fewer rows)",
        ) from exc
    finally:
        conn.set_progress_handler(None, 0)


def read_query(conn: sqlite3.Connection, table_id: str, request: Query) -> QueryPage | None:
    """One page of ``request`` on the table (compiled against the table's columns as of
    this read); None if the table does not exist. Raises ``QueryError``."""
    conn.execute("BEGIN")
    try:
        table = _table(conn, table_id)
        if table is None:
            return None
        plan = plan_query(
            table,
            where=request.where,
            order_by=request.order_by,
            columns=request.columns,
            after=request.after,
            limit=request.limit + 1,  # one more says whether another page follows
        )
        fetched = _run_bounded(conn, plan)
    finally:
        conn.execute("COMMIT")
    more = len(fetched) > request.limit
    fetched = fetched[: request.limit]
    columns = plan.columns
    rows = []
    for record in fetched:
        values = {}
        for column, value in zip(columns, record[2 : 2 + len(columns)], strict=True):
            if value is not None:
                values[column.id] = from_stored(column.type, value)
        rows.append(Row(id=str(record[0]), order=str(record[1]), values=values))
    return QueryPage(table, rows, more, plan, fetched)


def read_versions(conn: sqlite3.Connection) -> dict[str, int]:
    """Every table's committed version, dropped tables' included (one statement: one
    snapshot)."""
    return dict(conn.execute("SELECT id, version FROM _ht_tables").fetchall())


def read_since(
    conn: sqlite3.Connection, table_id: str, since: int
) -> tuple[TableState, list[Change]] | None:
    """The changes after version ``since``; None when the op log no longer holds them all
    (or ``since`` is ahead of the table), meaning the caller must send a snapshot."""
    conn.execute("BEGIN")
    try:
        table = _table(conn, table_id)
        if table is None or since > table.version or table.version - since > REPLAY_MAX:
            return None
        blobs = conn.execute(
            "SELECT change FROM _ht_oplog WHERE tbl=? AND version > ? ORDER BY version",
            (table_id, since),
        ).fetchall()
        if len(blobs) != table.version - since:
            return None
        return table, [change_decoder.decode(blob[0]) for blob in blobs]
    finally:
        conn.execute("COMMIT")
