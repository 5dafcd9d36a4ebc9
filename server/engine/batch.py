"""Validating a batch of ops against a table's schema, before anything touches storage.

How it works: :func:`plan_batch` walks the ops in order, evolving a copy of the table's
:class:`TableState` through the schema ops and checking every data op against the schema
in force at that point (column ids exist, values fit types, formula columns are not
written). It returns the new state and a list of storage steps with values already in
storage form. What only storage can know (whether a row exists or was deleted, neighbours'
order keys) is checked by the store while executing the steps, inside the same transaction.
Any failure raises :class:`BatchError` naming the op; the batch is then not applied at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol.limits import MAX_COLUMNS
from protocol.ops import (
    AddColumn,
    ColumnDef,
    ColumnType,
    CreateTable,
    DeleteRows,
    DropColumn,
    DropTable,
    InsertRows,
    MoveRow,
    Op,
    RenameColumn,
    RenameTable,
    SetFormula,
    UpdateCells,
)
from server.engine.catalog import ColumnState, TableState
from server.engine.cells import CellError, JsonBudget, to_stored
from server.engine.formula_renames import rename_references


class BatchError(Exception):
    """A batch cannot be applied: ``code`` from the wire registry, the failing op's index."""

    def __init__(self, code: str, message: str, op_index: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.op_index = op_index


@dataclass(frozen=True, slots=True)
class CreateSqlTable:
    """Create the SQLite table for a new table."""

    table: TableState


@dataclass(frozen=True, slots=True)
class DropSqlTable:
    """Drop a table's SQLite table."""

    sql: str


@dataclass(frozen=True, slots=True)
class AddSqlColumn:
    """Add a column to a SQLite table."""

    table_sql: str
    column: ColumnState


@dataclass(frozen=True, slots=True)
class DropSqlColumn:
    """Drop a column from a SQLite table."""

    table_sql: str
    column_sql: str


@dataclass(frozen=True, slots=True)
class InsertRowsStep:
    """Insert rows; each row's cells as (sql column, stored value)."""

    index: int
    op: InsertRows
    cells: tuple[tuple[tuple[str, Any], ...], ...]


@dataclass(frozen=True, slots=True)
class UpdateRowStep:
    """Set cells of one row."""

    index: int
    op: UpdateCells
    cells: tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class DeleteRowsStep:
    """Delete rows, leaving tombstones."""

    index: int
    op: DeleteRows


@dataclass(frozen=True, slots=True)
class MoveRowStep:
    """Give a row a new order key."""

    index: int
    op: MoveRow


@dataclass(frozen=True, slots=True)
class FormulaChanged:
    """A formula column was created or its formula replaced: recompute the column."""

    column: ColumnState


@dataclass(frozen=True, slots=True)
class FormulaRewritten:
    """A column rename rewrote this formula's text (same meaning, nothing to recompute)."""

    column: ColumnState


Step = (
    CreateSqlTable
    | DropSqlTable
    | AddSqlColumn
    | DropSqlColumn
    | InsertRowsStep
    | UpdateRowStep
    | DeleteRowsStep
    | MoveRowStep
    | FormulaChanged
    | FormulaRewritten
)

FormulaCheck = Callable[[TableState, ColumnState, int], None]
"""``check(table, column, op_index)``: checks a formula column against the table (syntax,
references, cycles); raises :class:`BatchError` with code ``formula_error`` naming the op.
Supplied by the formula layer (:func:`server.engine.formulas.make_check`)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """A validated batch: the table's state after it, the steps, the next SQL counter."""

    table: TableState
    steps: tuple[Step, ...]
    next_sql: int
    writes_schema: bool


def refuse_formulas(table: TableState, column: ColumnState, index: int) -> None:
    """The formula check of a server without a formula engine: refuse every formula."""
    raise BatchError("formula_error", "formula columns are not enabled on this server", index)


def _cells(
    table: TableState, values: dict[str, Any], index: int, budget: JsonBudget
) -> tuple[tuple[str, Any], ...]:
    out = []
    for column_id, value in values.items():
        column = table.column(column_id)
        if column is None:
            raise BatchError("unknown_column", f"no column {column_id!r} in table", index)
        if column.type is ColumnType.FORMULA:
            raise BatchError("read_only", f"column {column_id!r} is computed by a formula", index)
        try:
            out.append((column.sql, to_stored(column.type, value, budget)))
        except CellError as exc:
            raise BatchError("type_mismatch", f"column {column_id!r}: {exc}", index) from None
    return tuple(out)


def plan_batch(
    table_id: str,
    current: TableState | None,
    ops: list[Op],
    *,
    next_sql: int,
    name_taken: Callable[[str], bool],
    check_formula: FormulaCheck = refuse_formulas,
) -> Plan:
    """Validate ``ops`` for table ``table_id`` (``current`` is None if it never existed).

    ``name_taken(name)`` says whether another live table of the tenant has that name.
    Raises :class:`BatchError` on the first op that cannot be applied.
    """
    state = current
    steps: list[Step] = []
    writes_schema = False
    budget = JsonBudget()  # json cells of the whole batch share one

    def new_column(definition: ColumnDef, index: int) -> ColumnState:
        nonlocal next_sql
        if (definition.type is ColumnType.FORMULA) != (definition.formula is not None):
            raise BatchError(
                "invalid_op", "a formula column needs a formula; other columns take none", index
            )
        column = ColumnState(
            definition.id, definition.name, definition.type, f"c_{next_sql}", definition.formula
        )
        next_sql += 1
        return column

    for index, op in enumerate(ops):
        if isinstance(op, CreateTable):
            if current is not None or state is not None:
                raise BatchError("table_exists", f"table id {table_id!r} is already used", index)
            if name_taken(op.name):
                raise BatchError("table_exists", "a table with this name exists", index)
            state = TableState(table_id, op.name, f"t_{next_sql}", 0)
            next_sql += 1
            columns: list[ColumnState] = []
            for definition in op.columns:
                if any(c.id == definition.id or c.name == definition.name for c in columns):
                    raise BatchError("column_exists", "duplicate column id or name", index)
                columns.append(new_column(definition, index))
            state = state.evolve(columns=tuple(columns))
            steps.append(CreateSqlTable(state))
            for column in columns:
                if column.type is ColumnType.FORMULA:
                    check_formula(state, column, index)
                    steps.append(FormulaChanged(column))
            writes_schema = True
            continue
        if state is None:
            raise BatchError("unknown_table", f"no table {table_id!r}", index)
        if state.dropped:
            raise BatchError("unknown_table", f"table {table_id!r} was dropped", index)
        if isinstance(op, RenameTable):
            if op.name != state.name and name_taken(op.name):
                raise BatchError("table_exists", "a table with this name exists", index)
            state = state.evolve(name=op.name)
            writes_schema = True
        elif isinstance(op, DropTable):
            state = state.evolve(dropped=True)
            steps.append(DropSqlTable(state.sql))
            writes_schema = True
        elif isinstance(op, AddColumn):
            definition = op.column
            if state.column(definition.id) or state.column_named(definition.name):
                raise BatchError("column_exists", "a column with this id or name exists", index)
            if len(state.columns) >= MAX_COLUMNS:
                raise BatchError("invalid_op", f"a table has at most {MAX_COLUMNS} columns", index)
            column = new_column(definition, index)
            state = state.evolve(columns=(*state.columns, column))
            steps.append(AddSqlColumn(state.sql, column))
            if column.type is ColumnType.FORMULA:
                check_formula(state, column, index)
                steps.append(FormulaChanged(column))
            writes_schema = True
        elif isinstance(op, RenameColumn):
            column_or_none = state.column(op.column)
            if column_or_none is None:
                raise BatchError("unknown_column", f"no column {op.column!r}", index)
            other = state.column_named(op.name)
            if other is not None and other.id != op.column:
                raise BatchError("column_exists", "a column with this name exists", index)
            renamed = ColumnState(
                column_or_none.id,
                op.name,
                column_or_none.type,
                column_or_none.sql,
                column_or_none.formula,
            )
            before = state
            state = state.evolve(
                columns=tuple(renamed if c.id == op.column else c for c in state.columns)
            )
            state, rewritten = rename_references(before, state, op.column)
            steps.extend(FormulaRewritten(c) for c in rewritten)
            writes_schema = True
        elif isinstance(op, DropColumn):
            dropped = state.column(op.column)
            if dropped is None:
                raise BatchError("unknown_column", f"no column {op.column!r}", index)
            state = state.evolve(columns=tuple(c for c in state.columns if c.id != op.column))
            for column in state.columns:
                if column.type is ColumnType.FORMULA:
                    check_formula(state, column, index)
            steps.append(DropSqlColumn(state.sql, dropped.sql))
            writes_schema = True
        elif isinstance(op, SetFormula):
            target = state.column(op.column)
            if target is None:
                raise BatchError("unknown_column", f"no column {op.column!r}", index)
            if target.type is not ColumnType.FORMULA:
                raise BatchError("invalid_op", f"column {op.column!r} is not a formula", index)
            updated = ColumnState(target.id, target.name, target.type, target.sql, op.formula)
            state = state.evolve(
                columns=tuple(updated if c.id == op.column else c for c in state.columns)
            )
            check_formula(state, updated, index)
            steps.append(FormulaChanged(updated))
            writes_schema = True
        elif isinstance(op, InsertRows):
            table = state
            seen: set[str] = set()
            for row in op.rows:
                if row.after is not None and row.before is not None:
                    raise BatchError("invalid_op", "give after or before, not both", index)
                if row.id is not None:
                    if row.id in seen:
                        raise BatchError("row_exists", f"row {row.id!r} twice in one op", index)
                    seen.add(row.id)
            steps.append(
                InsertRowsStep(
                    index, op, tuple(_cells(table, row.values, index, budget) for row in op.rows)
                )
            )
        elif isinstance(op, UpdateCells):
            steps.append(UpdateRowStep(index, op, _cells(state, op.values, index, budget)))
        elif isinstance(op, DeleteRows):
            if len(set(op.rows)) != len(op.rows):
                raise BatchError("invalid_op", "a row is named twice", index)
            steps.append(DeleteRowsStep(index, op))
        elif isinstance(op, MoveRow):
            if op.after is not None and op.before is not None:
                raise BatchError("invalid_op", "give after or before, not both", index)
            if op.row in (op.after, op.before):
                raise BatchError("invalid_op", "a row cannot move next to itself", index)
            steps.append(MoveRowStep(index, op))
        else:  # pragma: no cover - the decoder admits only the ops above
            raise BatchError("invalid_op", f"unknown op {type(op).__name__}", index)
    if state is None:  # pragma: no cover - ops is never empty
        raise BatchError("invalid_op", "empty batch")
    return Plan(state.bumped(), tuple(steps), next_sql, writes_schema)
