"""Rows by column name, and row-level change events (pure, no I/O).

The wire keys cells by column id, which never changes; people and agents think in column
names, which do. A :class:`Record` is a row read through the table's *current* columns:
``record["Name"]`` after a rename of ``Name`` to ``Full name`` raises ``KeyError`` and
``record["Full name"]`` works, with no stale name kept anywhere.

:func:`apply_with_events` applies one committed change to a replica op by op and says what
happened to each row: ``inserted``, ``updated`` (with the names of the cells that changed)
or ``deleted`` (with the values it had), in op order, one event per row per change (an
insert followed by formula recomputations in the same change is one ``inserted``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from client_sdk.replica import Replica
from protocol.messages import Change
from protocol.ops import ColumnDef, DeleteRows, InsertRows, UpdateCells

RowEventKind = Literal["inserted", "updated", "deleted"]


class Record(Mapping[str, Any]):
    """One row: ``id`` plus its cells by column name (null cells absent), read-only."""

    __slots__ = ("_values", "id")

    def __init__(self, row_id: str, values: dict[str, Any]) -> None:
        self.id = row_id
        self._values = values

    @classmethod
    def of(cls, row_id: str, cells: Mapping[str, Any], columns: Mapping[str, ColumnDef]) -> Record:
        """The row whose cells are keyed by column id, read through ``columns``."""
        return cls(row_id, {columns[cid].name: v for cid, v in cells.items() if cid in columns})

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Record({self.id!r}, {self._values!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Record):
            return self.id == other.id and self._values == other._values
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """``{"_id": id, <name>: value, ...}``: the row as plain JSON-ready data."""
        return {"_id": self.id, **self._values}


@dataclass(frozen=True, slots=True)
class RowEvent:
    """What one committed change did to one row.

    ``values``: the row after the change by column name (for ``deleted``: as it was).
    ``changed``: names of the cells the change set (all of them for ``inserted``).
    ``by``: the subject that sent the change; ``version``: the table version it made.
    """

    kind: RowEventKind
    row: str
    values: Record
    changed: tuple[str, ...] = ()
    version: int = 0
    by: str = ""
    table: str = ""


def apply_with_events(replica: Replica, change: Change) -> list[RowEvent] | None:
    """Apply ``change`` to ``replica``; its row events, or ``None`` if already applied."""
    if change.version <= replica.version:
        return None
    kinds: dict[str, RowEventKind] = {}
    changed: dict[str, dict[str, None]] = {}  # row -> column ids set (ordered)
    deleted: dict[str, Record] = {}
    for op in change.ops:
        match op:
            case InsertRows(rows=rows):
                for row in rows:
                    if row.id is not None:
                        kinds.setdefault(row.id, "inserted")
                        changed.setdefault(row.id, {}).update(dict.fromkeys(row.values))
            case UpdateCells(row=rid, values=cells) if rid in replica.rows:
                kinds.setdefault(rid, "updated")
                changed.setdefault(rid, {}).update(dict.fromkeys(cells))
            case DeleteRows(rows=rids):
                for rid in rids:
                    before = replica.rows.get(rid)
                    if before is not None:
                        deleted[rid] = Record.of(rid, before, replica.columns)
                        kinds[rid] = "deleted"
            case _:
                pass
        replica.apply_op(op)
    replica.version = change.version
    columns = replica.columns
    events: list[RowEvent] = []
    for rid, kind in kinds.items():
        if kind == "deleted":
            values = deleted[rid]
            names: tuple[str, ...] = ()
        else:
            now = replica.rows.get(rid)
            if now is None:  # inserted and deleted again: reported as deleted above
                continue
            values = Record.of(rid, now, columns)
            names = tuple(columns[c].name for c in changed.get(rid, {}) if c in columns)
        events.append(RowEvent(kind, rid, values, names, change.version, change.by, replica.id))
    return events
