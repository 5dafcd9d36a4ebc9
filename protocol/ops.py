"""Table ops: the edits a client sends in an ``apply`` batch and the server broadcasts.

Ops address tables, columns and rows by id, never by position, so concurrent edits need no
operational transform: the server's commit order decides, last writer wins per cell, and a
deleted row stays deleted. A batch applies to one table and is atomic.

Row order is a fractional key (``order``) the server assigns: clients say where a row goes
(``after`` or ``before`` another row; neither means the end) and the broadcast op carries the
resulting key so every replica sorts identically.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from msgspec import Meta, Struct

from protocol.ids import FormulaText, Id, Name
from protocol.limits import (
    MAX_ABS_NUMBER,
    MAX_CELL_CHARS,
    MAX_COLUMNS,
    MAX_ROWS_PER_OP,
    MAX_SAFE_INTEGER,
)


class ColumnType(enum.StrEnum):
    """What a column holds. ``formula`` columns are computed by the server."""

    TEXT = "text"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    JSON = "json"
    FORMULA = "formula"


Cell = (
    None
    | bool
    | Annotated[int, Meta(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
    | Annotated[float, Meta(ge=-MAX_ABS_NUMBER, le=MAX_ABS_NUMBER)]
    | Annotated[str, Meta(max_length=MAX_CELL_CHARS)]
    | list[Any]
    | dict[str, Any]
)
"""A cell value. Lists and dicts are for json columns; the op engine checks the rest."""

CellMap = dict[Id, Cell]


class ColumnDef(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A column: its id (stable), name (renamable), type, and formula for formula columns."""

    id: Id
    name: Name
    type: ColumnType
    formula: FormulaText | None = None


class CreateTable(Struct, tag="create_table", forbid_unknown_fields=True, omit_defaults=True):
    """Create the batch's table with a name and initial columns."""

    name: Name
    columns: Annotated[list[ColumnDef], Meta(max_length=MAX_COLUMNS)] = []


class RenameTable(Struct, tag="rename_table", forbid_unknown_fields=True):
    """Rename the batch's table."""

    name: Name


class DropTable(Struct, tag="drop_table", forbid_unknown_fields=True):
    """Drop the batch's table; its id is never reused."""


class AddColumn(Struct, tag="add_column", forbid_unknown_fields=True):
    """Add a column; existing rows hold null in it."""

    column: ColumnDef


class RenameColumn(Struct, tag="rename_column", forbid_unknown_fields=True):
    """Rename a column."""

    column: Id
    name: Name


class DropColumn(Struct, tag="drop_column", forbid_unknown_fields=True):
    """Drop a column and its values."""

    column: Id


class SetFormula(Struct, tag="set_formula", forbid_unknown_fields=True):
    """Set (or replace) a formula column's formula; values are recomputed by the server."""

    column: Id
    formula: FormulaText


class NewRow(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One row to insert. ``id`` is made by the server when absent.

    ``after``/``before`` place the row next to another; neither means the end of the table.
    ``order`` is assigned by the server (a client's value is ignored) and broadcast.
    """

    id: Id | None = None
    values: CellMap = {}
    after: Id | None = None
    before: Id | None = None
    order: str | None = None


class InsertRows(Struct, tag="insert_rows", forbid_unknown_fields=True):
    """Insert rows."""

    rows: Annotated[list[NewRow], Meta(min_length=1, max_length=MAX_ROWS_PER_OP)]


class UpdateCells(Struct, tag="update_cells", forbid_unknown_fields=True):
    """Set cells of one row; cells not named keep their values."""

    row: Id
    values: Annotated[CellMap, Meta(min_length=1)]


class DeleteRows(Struct, tag="delete_rows", forbid_unknown_fields=True):
    """Delete rows. A deleted row stays deleted: later edits to it are refused."""

    rows: Annotated[list[Id], Meta(min_length=1, max_length=MAX_ROWS_PER_OP)]


class MoveRow(Struct, tag="move_row", forbid_unknown_fields=True, omit_defaults=True):
    """Move a row next to another (or to the end); ``order`` is assigned by the server."""

    row: Id
    after: Id | None = None
    before: Id | None = None
    order: str | None = None


Op = (
    CreateTable
    | RenameTable
    | DropTable
    | AddColumn
    | RenameColumn
    | DropColumn
    | SetFormula
    | InsertRows
    | UpdateCells
    | DeleteRows
    | MoveRow
)
"""Any op. Schema ops: the first seven; data ops: the rest."""

SCHEMA_OPS = (CreateTable, RenameTable, DropTable, AddColumn, RenameColumn, DropColumn, SetFormula)
"""Ops that need the ``schema:write`` scope."""


class Row(Struct, omit_defaults=True):
    """A row as stored: id, order key and the values of its non-null cells."""

    id: str
    order: str
    values: dict[str, Any] = {}
