"""Group commit: many batches, one transaction, one thread hop.

How it works: the tenant's writer task hands every batch that queued up while the previous
transaction ran to :func:`commit_group`, which runs inside the tenant's aiosqlite thread.
A batch that fails rolls back alone while the others in the group commit together: the
group first runs without savepoints (batches rarely fail), and only if one fails is that
transaction rolled back and the group run again with a SAVEPOINT per batch (a batch alone
in its group needs none: its failure rolls back a transaction that held nothing else). The
whole group costs one ``BEGIN``/``COMMIT`` (one fsync under ``Durability.POWER``) and one
thread round trip instead of one per statement. Catalog changes are returned, not applied:
the caller swaps them in only after ``COMMIT`` succeeded.
"""

from __future__ import annotations

import enum
import secrets
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import msgspec

from protocol.messages import Change
from protocol.ops import InsertRows, MoveRow, NewRow, Op
from server.engine.batch import (
    AddSqlColumn,
    BatchError,
    CreateSqlTable,
    DeleteRowsStep,
    DropSqlColumn,
    DropSqlTable,
    FormulaChanged,
    FormulaCheck,
    InsertRowsStep,
    MoveRowStep,
    Plan,
    UpdateRowStep,
    plan_batch,
    refuse_formulas,
)
from server.engine.catalog import TableState, encode_columns
from server.engine.order import OrderKeyError, key_between
from server.store.catalog import data_version, load_catalog
from server.store.failures import batch_error

OPLOG_RETAIN = 10_000
"""Versions of each table kept in the op log: replay and retry dedupe reach this far back."""

_change_encoder = msgspec.msgpack.Encoder()
change_decoder = msgspec.msgpack.Decoder(Change)


@dataclass(slots=True)
class BatchRequest:
    """A batch waiting for the writer."""

    table: str
    client: str
    op: str
    ops: list[Op]
    by: str


@dataclass(slots=True)
class BatchOutcome:
    """What happened to a batch: committed (``change``), duplicate, or ``error``."""

    version: int = 0
    change: Change | None = None
    duplicate: bool = False
    error: BatchError | None = None
    failure: BaseException | None = None
    """What SQLite raised when the store (not the batch) is at fault; logged by the store."""


@dataclass(slots=True)
class GroupResult:
    """The outcomes in request order plus the catalog changes to swap in after commit."""

    outcomes: list[BatchOutcome]
    tables: dict[str, TableState] = field(default_factory=dict)
    next_sql: int = 0
    catalog: dict[str, TableState] | None = None
    """The whole catalog as re-read inside the transaction, when another process had
    changed the database since ``seen_version`` (swap it in before ``tables``); else None."""
    data_version: int = 0
    """``PRAGMA data_version`` inside the transaction: pass it as the next ``seen_version``."""
    hooked: bool = False
    """Whether a live webhook exists (as read or as passed in): pass it as the next
    ``hooked`` while nothing but group commits writes the database."""


class _Repeat(Exception):
    """The op log refused the batch's row: a retry (same table, client, op) when the op log
    holds it, else a version conflict (``cause``)."""

    def __init__(self, cause: sqlite3.IntegrityError) -> None:
        super().__init__("op log row refused")
        self.cause = cause


FormulaRecompute = Callable[[sqlite3.Connection, TableState, Plan, list[Op]], list[Op]]
"""``recompute(conn, table, plan, applied_ops)``: recomputes the formula columns a plan
touched, inside the transaction; returns the server-made ops (computed cells, rewritten
formula texts) to append to the change so replicas see them."""


def _row_order(conn: sqlite3.Connection, sql: str, row: str, index: int) -> str:
    found = conn.execute(f"SELECT _ord FROM {sql} WHERE _id=?", (row,)).fetchone()  # noqa: S608
    if found is None:
        raise BatchError("unknown_row", f"no row {row!r}", index)
    return str(found[0])


def _place(
    conn: sqlite3.Connection,
    sql: str,
    after: str | None,
    before: str | None,
    index: int,
    moving: str = "",
) -> str:
    """An order key for a row placed after ``after``, before ``before``, or at the end.

    ``moving`` is the id of a row being moved, left out of the neighbours.
    """
    if after is not None:
        low: str | None = _row_order(conn, sql, after, index)
        nxt = conn.execute(
            f"SELECT min(_ord) FROM {sql} WHERE _ord > ? AND _id != ?",  # noqa: S608
            (low, moving),
        ).fetchone()
        high: str | None = nxt[0]
    elif before is not None:
        high = _row_order(conn, sql, before, index)
        prv = conn.execute(
            f"SELECT max(_ord) FROM {sql} WHERE _ord < ? AND _id != ?",  # noqa: S608
            (high, moving),
        ).fetchone()
        low = prv[0]
    else:
        last = conn.execute(
            f"SELECT max(_ord) FROM {sql} WHERE _id != ?",  # noqa: S608
            (moving,),
        ).fetchone()
        low, high = last[0], None
    try:
        return key_between(low, high)
    except OrderKeyError:
        raise BatchError("invalid_op", "no room left at that position", index) from None


def _missing_row(conn: sqlite3.Connection, table: str, row: str, index: int) -> BatchError:
    dead = conn.execute(
        "SELECT 1 FROM _ht_tombstones WHERE tbl=? AND row=?", (table, row)
    ).fetchone()
    if dead:
        return BatchError("row_deleted", f"row {row!r} was deleted", index)
    return BatchError("unknown_row", f"no row {row!r}", index)


def _execute_plan(conn: sqlite3.Connection, table_id: str, plan: Plan, ops: list[Op]) -> list[Op]:
    """Run a plan's steps; returns the ops as applied (server-made ids and order keys)."""
    applied = list(ops)
    sql = plan.table.sql
    for step in plan.steps:  # data steps first: the common ones cost the fewest checks
        if isinstance(step, UpdateRowStep):
            sets = ", ".join(f"{name}=?" for name, _ in step.cells)
            cur = conn.execute(
                f"UPDATE {sql} SET {sets} WHERE _id=?",  # noqa: S608
                (*(value for _, value in step.cells), step.op.row),
            )
            if cur.rowcount == 0:
                raise _missing_row(conn, table_id, step.op.row, step.index)
        elif isinstance(step, InsertRowsStep):
            rows: list[NewRow] = []
            previous: str | None = None
            for row, cells in zip(step.op.rows, step.cells, strict=True):
                row_id = row.id or secrets.token_urlsafe(12)
                if row.after is None and row.before is None and previous is not None:
                    order = key_between(previous, None)
                else:
                    order = _place(conn, sql, row.after, row.before, step.index)
                previous = order
                if (
                    row.id is not None
                    and conn.execute(
                        "SELECT 1 FROM _ht_tombstones WHERE tbl=? AND row=?", (table_id, row_id)
                    ).fetchone()
                ):
                    raise BatchError("row_deleted", f"row {row_id!r} was deleted", step.index)
                names = "".join(f", {name}" for name, _ in cells)
                marks = ", ?" * len(cells)
                try:
                    conn.execute(
                        f"INSERT INTO {sql} (_id, _ord{names}) VALUES (?, ?{marks})",  # noqa: S608
                        (row_id, order, *(value for _, value in cells)),
                    )
                except sqlite3.IntegrityError:
                    raise BatchError("row_exists", f"row {row_id!r} exists", step.index) from None
                rows.append(NewRow(id=row_id, values=row.values, order=order))
            applied[step.index] = InsertRows(rows=rows)
        elif isinstance(step, DeleteRowsStep):
            for row_id in step.op.rows:
                cur = conn.execute(f"DELETE FROM {sql} WHERE _id=?", (row_id,))  # noqa: S608
                if cur.rowcount == 0:
                    raise _missing_row(conn, table_id, row_id, step.index)
                conn.execute(
                    "INSERT OR IGNORE INTO _ht_tombstones (tbl, row) VALUES (?, ?)",
                    (table_id, row_id),
                )
        elif isinstance(step, MoveRowStep):
            if conn.execute(f"SELECT 1 FROM {sql} WHERE _id=?", (step.op.row,)).fetchone() is None:  # noqa: S608
                # A move is a later edit too: a deleted row answers row_deleted.
                raise _missing_row(conn, table_id, step.op.row, step.index)
            order = _place(conn, sql, step.op.after, step.op.before, step.index, moving=step.op.row)
            conn.execute(f"UPDATE {sql} SET _ord=? WHERE _id=?", (order, step.op.row))  # noqa: S608
            applied[step.index] = MoveRow(row=step.op.row, order=order)
        elif isinstance(step, CreateSqlTable):
            cols = "".join(f", {c.sql}" for c in step.table.columns)
            conn.execute(
                f"CREATE TABLE {step.table.sql} (_id TEXT PRIMARY KEY, _ord TEXT NOT NULL{cols})"
            )
            conn.execute(f"CREATE INDEX {step.table.sql}_ord ON {step.table.sql} (_ord)")
        elif isinstance(step, DropSqlTable):
            conn.execute(f"DROP TABLE {step.sql}")
        elif isinstance(step, AddSqlColumn):
            conn.execute(f"ALTER TABLE {step.table_sql} ADD COLUMN {step.column.sql}")
        elif isinstance(step, DropSqlColumn):
            conn.execute(f"ALTER TABLE {step.table_sql} DROP COLUMN {step.column_sql}")
        elif isinstance(step, FormulaChanged):
            pass  # recomputed by the formula hook after all steps ran
    return applied


def commit_group(
    conn: sqlite3.Connection,
    tables: Mapping[str, TableState],
    next_sql: int,
    requests: list[BatchRequest],
    now: float,
    check_formula: FormulaCheck | None = None,
    recompute: FormulaRecompute | None = None,
    seen_version: int | None = None,
    hooked: bool | None = None,
) -> GroupResult:
    """Apply ``requests`` in one transaction (runs in the tenant's SQLite thread).

    Several hub processes may write one tenant database: ``BEGIN IMMEDIATE`` takes SQLite's
    write lock (waiting up to the busy timeout), and when ``PRAGMA data_version`` differs
    from ``seen_version`` another connection committed since this one last looked, so the catalog
    (table versions, columns, the SQL name counter) is re-read under the lock before any
    version is assigned. Versions therefore come from the database, gap-free, whichever
    process writes.

    ``hooked`` is whether the tenant has a live webhook as the caller last saw it (None:
    unknown, read it); it is read again when another connection committed since.

    A group of several batches first runs without savepoints: batches rarely fail, and a
    SAVEPOINT/RELEASE pair per batch is a third of the statements of an edit. If one fails,
    that transaction is rolled back (nothing of it was committed or broadcast) and the group
    runs again with a savepoint per batch, so that the failing batch rolls back alone.
    """
    args = (conn, tables, next_sql, requests, now, check_formula, recompute, seen_version, hooked)
    if len(requests) > 1:
        optimistic = _run_group(*args, mode=_Mode.NONE_FAILS)
        if optimistic is not None:
            return optimistic
        result = _run_group(*args, mode=_Mode.SAVEPOINTS)
    else:
        result = _run_group(*args, mode=_Mode.ALONE)
    assert result is not None  # only NONE_FAILS gives up
    return result


class _Mode(enum.Enum):
    """How :func:`_run_group` contains a failing batch."""

    ALONE = "alone"
    """One batch: its failure rolls back the transaction, which held nothing else."""
    SAVEPOINTS = "savepoints"
    """A savepoint per batch: a failing batch rolls back alone."""
    NONE_FAILS = "none fails"
    """No savepoints: a failing batch rolls the transaction back and the result is None."""


def _run_group(
    conn: sqlite3.Connection,
    tables: Mapping[str, TableState],
    next_sql: int,
    requests: list[BatchRequest],
    now: float,
    check_formula: FormulaCheck | None,
    recompute: FormulaRecompute | None,
    seen_version: int | None,
    hooked: bool | None,
    *,
    mode: _Mode,
) -> GroupResult | None:
    overlay: dict[str, TableState] = {}
    result = GroupResult(outcomes=[], next_sql=next_sql)

    def state_of(table_id: str) -> TableState | None:
        return overlay.get(table_id) or tables.get(table_id)

    def name_taken_by_other(table_id: str) -> Callable[[str], bool]:
        def taken(name: str) -> bool:
            for tid in {*tables, *overlay}:
                other = state_of(tid)
                if tid != table_id and other and not other.dropped and other.name == name:
                    return True
            return False

        return taken

    check = check_formula or refuse_formulas
    conn.execute("BEGIN IMMEDIATE")
    try:
        result.data_version = data_version(conn)
        if seen_version is not None and result.data_version != seen_version:
            tables, next_sql = load_catalog(conn)
            result.catalog, result.next_sql = dict(tables), next_sql
            hooked = None
        if hooked is None:
            # Read under the write lock: no webhook can be added or removed during the group.
            hooked = (
                conn.execute(
                    "SELECT 1 FROM _ht_webhooks WHERE disabled_at IS NULL LIMIT 1"
                ).fetchone()
                is not None
            )
        result.hooked = hooked
        savepoints = mode is _Mode.SAVEPOINTS
        for request in requests:
            # Idempotency costs nothing on the common path: the op log's unique index on
            # (table, client, op) refuses a repeat at INSERT time, and only then (or when the
            # batch fails) do we look up the original version.
            if savepoints:
                conn.execute("SAVEPOINT batch")
            try:
                plan = plan_batch(
                    request.table,
                    state_of(request.table),
                    request.ops,
                    next_sql=result.next_sql,
                    name_taken=name_taken_by_other(request.table),
                    check_formula=check,
                )
                applied = _execute_plan(conn, request.table, plan, request.ops)
                if recompute is not None and not plan.table.dropped:
                    applied.extend(recompute(conn, plan.table, plan, applied))
                state = plan.table
                change = Change(
                    version=state.version,
                    ops=applied,
                    by=request.by,
                    client=request.client,
                    op=request.op,
                )
                encoded = _change_encoder.encode(change)
                try:
                    conn.execute(
                        "INSERT INTO _ht_oplog (tbl, version, client, op, ts, change) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (state.id, state.version, request.client, request.op, now, encoded),
                    )
                except sqlite3.IntegrityError as exc:
                    raise _Repeat(exc) from None
                if hooked:
                    # The webhook outbox, in the change's own transaction (server/webhooks):
                    # one row per webhook of this table or of every table.
                    conn.execute(
                        "INSERT INTO _ht_webhook_outbox (hook, tbl, version, change) "
                        "SELECT id, ?, ?, ? FROM _ht_webhooks"
                        " WHERE (tbl IS NULL OR tbl = ?) AND disabled_at IS NULL",
                        (state.id, state.version, encoded, state.id),
                    )
                if state.version % 1000 == 0:
                    conn.execute(
                        "DELETE FROM _ht_oplog WHERE tbl=? AND version <= ?",
                        (state.id, state.version - OPLOG_RETAIN),
                    )
                if savepoints:
                    conn.execute("RELEASE batch")
            except (BatchError, _Repeat, sqlite3.Error) as exc:
                if not conn.in_transaction:
                    # SQLite rolled the whole transaction back (disk full, I/O error): the
                    # group as a whole failed, with this cause.
                    raise
                if mode is _Mode.NONE_FAILS:
                    conn.execute("ROLLBACK")
                    return None  # run the group again, with savepoints
                if mode is _Mode.ALONE:
                    conn.execute("ROLLBACK")  # the transaction held this batch only
                else:
                    conn.execute("ROLLBACK TO batch")
                    conn.execute("RELEASE batch")
                # A retried batch may fail now (its row exists since its first run): a
                # batch seen before is acknowledged again with its original version.
                seen = conn.execute(
                    "SELECT version FROM _ht_oplog WHERE tbl=? AND client=? AND op=?",
                    (request.table, request.client, request.op),
                ).fetchone()
                if seen is not None:
                    result.outcomes.append(BatchOutcome(version=seen[0], duplicate=True))
                elif isinstance(exc, BatchError):
                    result.outcomes.append(BatchOutcome(error=exc))
                else:
                    failure = exc.cause if isinstance(exc, _Repeat) else exc
                    result.outcomes.append(
                        BatchOutcome(error=batch_error(failure), failure=failure)
                    )
                continue
            overlay[state.id] = state
            result.next_sql = plan.next_sql
            result.outcomes.append(BatchOutcome(version=state.version, change=change))
        # Table rows once per table per group, not per batch: a hot table's row would
        # otherwise be rewritten (and its columns re-encoded) for every edit.
        for state in overlay.values():
            before = tables.get(state.id)
            if (
                before is not None
                and before.columns is state.columns
                and before.name == state.name
                and before.dropped == state.dropped
            ):
                # Only the version moved (a data batch): no columns to encode again.
                conn.execute(
                    "UPDATE _ht_tables SET version=? WHERE id=?", (state.version, state.id)
                )
                continue
            conn.execute(
                "INSERT INTO _ht_tables (id, sql, name, version, dropped, columns) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "name=excluded.name, version=excluded.version, dropped=excluded.dropped, "
                "columns=excluded.columns",
                (
                    state.id,
                    state.sql,
                    state.name,
                    state.version,
                    int(state.dropped),
                    encode_columns(state.columns).decode(),
                ),
            )
        if result.next_sql != next_sql:
            conn.execute("UPDATE _ht_meta SET value=? WHERE key='next_sql'", (result.next_sql,))
        if conn.in_transaction:  # not when a batch alone in its group rolled it back
            conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    result.tables = overlay
    return result
