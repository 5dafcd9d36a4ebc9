"""Lookups over whole columns of the table: XLOOKUP, MATCH, INDEX.

Column arguments must be bare column references (``{Name}``); the compiler enforces it.
Matching is exact (text case-insensitive, TRUE never equal to 1) through an index built once
per evaluation context, so a lookup per row costs one dictionary probe, not a column scan.
"""

from __future__ import annotations

from server.formula.context import ColumnView, EvalContext
from server.formula.errors import Signal
from server.formula.functions.spec import Builtin, builtin
from server.formula.values import NA, REF, VALUE, CellValue, ErrorValue, to_int

_PLAIN = frozenset({type(None), bool, int, float, str})


def cell(v: object) -> CellValue:
    """A value read from a column: errors propagate, foreign types are ``#VALUE!``."""
    t = type(v)
    if t in _PLAIN:
        return v  # type: ignore[return-value]
    if t is ErrorValue:
        raise Signal(v)  # type: ignore[arg-type]
    raise Signal(VALUE)


def _xlookup(
    ctx: EvalContext,
    needle: object,
    keys: ColumnView,
    results: ColumnView,
    if_not_found: object = NA,
) -> CellValue:
    at = keys.position(needle)  # type: ignore[arg-type]
    if at is None:
        if type(if_not_found) is ErrorValue:
            raise Signal(if_not_found)
        return if_not_found  # type: ignore[return-value]
    return cell(results.values[at]) if at < len(results.values) else None


def _match(ctx: EvalContext, needle: object, keys: ColumnView) -> int:
    at = keys.position(needle)  # type: ignore[arg-type]
    if at is None:
        raise Signal(NA)
    return at + 1


def _index(ctx: EvalContext, column: ColumnView, position: object) -> CellValue:
    i = to_int(position, 1, 2**31)
    if i > len(column.values):
        raise Signal(REF)
    return cell(column.values[i - 1])


FUNCTIONS: tuple[Builtin, ...] = (
    builtin(
        "XLOOKUP",
        _xlookup,
        3,
        4,
        "The value in a result column at the first row whose key column equals the value.",
        column_params=(1, 2),
    ),
    builtin(
        "MATCH",
        _match,
        2,
        2,
        "1-based row position of a value in a column; #N/A if absent.",
        column_params=(1,),
    ),
    builtin(
        "INDEX",
        _index,
        2,
        2,
        "The value at a 1-based row position in a column.",
        column_params=(0,),
    ),
)
