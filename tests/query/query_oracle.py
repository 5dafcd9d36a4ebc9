"""The meaning of a query, written plainly in Python over a snapshot's rows.

This is the specification the SQL compiler (server/store/query.py) is tested against: the
rules of docs/protocol.md ("Queries"), one branch per rule, no SQL in sight.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from protocol.ops import ColumnDef, ColumnType, Row
from protocol.query import (
    And,
    Compare,
    Contains,
    Eq,
    Filter,
    Ge,
    Gt,
    In,
    IsNull,
    Le,
    Lt,
    Ne,
    Not,
    Or,
    OrderBy,
    StartsWith,
)


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _column(columns: Sequence[ColumnDef], ref: str) -> ColumnDef | None:
    """None means the row id."""
    if ref == "_id":
        return None
    found = next((c for c in columns if c.id == ref), None)
    found = found or next((c for c in columns if c.name == ref), None)
    assert found is not None, ref
    return found


def _cell(row: Row, column: ColumnDef | None) -> Any:
    return row.id if column is None else row.values.get(column.id)


def _comparable(column: ColumnDef | None, cell: Any, value: Any) -> tuple[Any, Any] | None:
    """The two sides made comparable, or None when they are of different kinds."""
    kind = ColumnType.TEXT if column is None else column.type
    if kind is ColumnType.DATETIME:
        return _instant(cell), _instant(value)
    if kind is ColumnType.FORMULA:
        if isinstance(value, bool):
            value = "TRUE" if value else "FALSE"
        if _is_number(cell) and _is_number(value):
            return cell, value
        if isinstance(cell, str) and isinstance(value, str):
            return cell, value
        return None
    return cell, value


def matches(where: Filter, row: Row, columns: Sequence[ColumnDef]) -> bool:
    """Whether ``row`` satisfies ``where``."""
    match where:
        case And(args=args):
            return all(matches(a, row, columns) for a in args)
        case Or(args=args):
            return any(matches(a, row, columns) for a in args)
        case Not(arg=arg):
            return not matches(arg, row, columns)
        case IsNull(column=ref):
            return _cell(row, _column(columns, ref)) is None
        case In(column=ref, values=values):
            return any(matches(Eq(column=ref, value=v), row, columns) for v in values)
        case Contains(column=ref, value=text) | StartsWith(column=ref, value=text):
            cell = _cell(row, _column(columns, ref))
            if not isinstance(cell, str):
                return False
            if isinstance(where, Contains):
                return text.casefold() in cell.casefold()
            return cell.casefold().startswith(text.casefold())
        case Compare(column=ref, value=value):
            column = _column(columns, ref)
            cell = _cell(row, column)
            if cell is None:
                return False
            pair = _comparable(column, cell, value)
            if isinstance(where, Ne):
                return pair is None or pair[0] != pair[1]
            if pair is None:
                return False
            a, b = pair
            if isinstance(where, Eq):
                return bool(a == b)
            if isinstance(where, Lt):
                return bool(a < b)
            if isinstance(where, Le):
                return bool(a <= b)
            if isinstance(where, Gt):
                return bool(a > b)
            assert isinstance(where, Ge)
            return bool(a >= b)
    raise AssertionError(where)


def _sort_value(column: ColumnDef | None, cell: Any) -> Any:
    if column is not None and column.type is ColumnType.DATETIME:
        return _instant(cell)
    if column is not None and column.type is ColumnType.FORMULA:
        return (0, cell) if _is_number(cell) else (1, cell)  # numbers before text
    return cell


def ordered(
    rows: Sequence[Row], order_by: Sequence[OrderBy], columns: Sequence[ColumnDef]
) -> list[Row]:
    """``rows`` sorted by ``order_by`` (nulls last either way), then by row order."""
    keys = [(_column(columns, entry.column), entry.desc) for entry in order_by]

    def compare(x: Row, y: Row) -> int:
        for column, desc in keys:
            a, b = _cell(x, column), _cell(y, column)
            if a is None or b is None:
                if a is None and b is None:
                    continue
                return 1 if a is None else -1
            a, b = _sort_value(column, a), _sort_value(column, b)
            if a != b:
                return (1 if a > b else -1) * (-1 if desc else 1)
        return -1 if (x.order, x.id) < (y.order, y.id) else 1

    return sorted(rows, key=functools.cmp_to_key(compare))
