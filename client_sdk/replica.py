"""A table's local replica: applying snapshots and committed changes (pure, no I/O).

The server is the authority: the replica only ever applies what the server committed, in
version order, so every replica of a table converges to the server's state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protocol.messages import Change, TableInfo
from protocol.ops import (
    AddColumn,
    ColumnDef,
    CreateTable,
    DeleteRows,
    DropColumn,
    DropTable,
    InsertRows,
    MoveRow,
    Op,
    RenameColumn,
    RenameTable,
    Row,
    SetFormula,
    UpdateCells,
)


@dataclass
class Replica:
    """Rows (id -> values), their order keys, the columns and the version."""

    id: str
    name: str = ""
    version: int = 0
    columns: dict[str, ColumnDef] = field(default_factory=dict)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: dict[str, str] = field(default_factory=dict)
    dropped: bool = False

    def reset(self, info: TableInfo) -> None:
        """Start over from a snapshot's first chunk."""
        self.name = info.name
        self.version = info.version
        self.columns = {c.id: c for c in info.columns}
        self.rows = {}
        self.order = {}
        self.dropped = False

    def load(self, rows: list[Row]) -> None:
        """Add snapshot rows."""
        for row in rows:
            self.rows[row.id] = dict(row.values)
            self.order[row.id] = row.order

    def apply(self, change: Change) -> bool:
        """Apply a committed change; False if it was already applied (older version)."""
        if change.version <= self.version:
            return False
        for op in change.ops:
            self.apply_op(op)
        self.version = change.version
        return True

    def apply_op(self, op: Op) -> None:
        """Apply one committed op."""
        match op:
            case CreateTable(name=name, columns=columns):
                self.name = name
                self.columns = {c.id: c for c in columns}
            case RenameTable(name=name):
                self.name = name
            case DropTable():
                self.dropped = True
                self.rows.clear()
                self.order.clear()
            case AddColumn(column=column):
                self.columns[column.id] = column
            case RenameColumn(column=cid, name=name):
                old = self.columns[cid]
                self.columns[cid] = ColumnDef(id=cid, name=name, type=old.type, formula=old.formula)
            case DropColumn(column=cid):
                self.columns.pop(cid, None)
                for values in self.rows.values():
                    values.pop(cid, None)
            case SetFormula(column=cid, formula=formula):
                old = self.columns[cid]
                self.columns[cid] = ColumnDef(id=cid, name=old.name, type=old.type, formula=formula)
            case InsertRows(rows=rows):
                for row in rows:
                    if row.id is None or row.order is None:
                        continue
                    self.rows[row.id] = {k: v for k, v in row.values.items() if v is not None}
                    self.order[row.id] = row.order
            case UpdateCells(row=rid, values=values):
                current = self.rows.get(rid)
                if current is not None:
                    for key, value in values.items():
                        if value is None:
                            current.pop(key, None)
                        else:
                            current[key] = value
            case DeleteRows(rows=rids):
                for rid in rids:
                    self.rows.pop(rid, None)
                    self.order.pop(rid, None)
            case MoveRow(row=rid, order=order):
                if rid in self.order and order is not None:
                    self.order[rid] = order

    def ordered(self) -> list[Row]:
        """The rows in table order."""
        return [
            Row(id=rid, order=self.order[rid], values=self.rows[rid])
            for rid in sorted(self.rows, key=lambda r: (self.order[r], r))
        ]

    def column_id(self, key: str) -> str:
        """A column id from an id or a name (ids win)."""
        if key in self.columns:
            return key
        for column in self.columns.values():
            if column.name == key:
                return column.id
        return key  # unknown: the server will answer unknown_column
