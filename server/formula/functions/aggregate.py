"""SUM, AVERAGE, MIN, MAX, COUNT, COUNTA over whole columns and/or scalar arguments.

A bare ``{Column}`` argument means the whole column (a :class:`ColumnStats` scanned once
per evaluation context). Like a spreadsheet range, a column contributes only its numbers
(booleans and numeric text in cells are skipped) and an error value in it propagates.
Scalar arguments are coerced like operands: ``SUM("3", TRUE)`` is 4.
"""

from __future__ import annotations

from collections.abc import Iterator

from server.formula.context import ColumnStats, EvalContext
from server.formula.errors import Signal
from server.formula.functions.spec import Builtin, builtin
from server.formula.values import DIV0, Number, to_number


def _numbers(args: tuple[object, ...]) -> Iterator[tuple[Number, int] | ColumnStats]:
    for a in args:
        if type(a) is ColumnStats:
            if a.error is not None:
                raise Signal(a.error)
            yield a
        elif a is not None:  # a blank scalar counts for nothing, as an empty cell would
            yield (to_number(a), 1)


def _sum(ctx: EvalContext, *args: object) -> Number:
    total: Number = 0
    for part in _numbers(args):
        total += part.total if isinstance(part, ColumnStats) else part[0]
    return total


def _average(ctx: EvalContext, *args: object) -> Number:
    total: Number = 0
    count = 0
    for part in _numbers(args):
        if isinstance(part, ColumnStats):
            total += part.total
            count += part.count
        else:
            total += part[0]
            count += 1
    if count == 0:
        raise Signal(DIV0)
    return total / count


def _extreme(args: tuple[object, ...], pick_high: bool) -> Number:
    found: list[Number] = []
    for part in _numbers(args):
        if isinstance(part, ColumnStats):
            v = part.high if pick_high else part.low
            if v is not None:
                found.append(v)
        else:
            found.append(part[0])
    if not found:
        return 0  # spreadsheets give 0 for MIN/MAX of nothing
    return max(found) if pick_high else min(found)


def _min(ctx: EvalContext, *args: object) -> Number:
    return _extreme(args, pick_high=False)


def _max(ctx: EvalContext, *args: object) -> Number:
    return _extreme(args, pick_high=True)


def _count(ctx: EvalContext, *args: object) -> int:
    n = 0
    for a in args:
        if type(a) is ColumnStats:
            n += a.count
        elif type(a) is int or type(a) is float:
            n += 1
    return n


def _counta(ctx: EvalContext, *args: object) -> int:
    n = 0
    for a in args:
        if type(a) is ColumnStats:
            n += a.counta
        elif a is not None and a != "":  # an error value counts: it is not blank
            n += 1
    return n


FUNCTIONS: tuple[Builtin, ...] = (
    builtin(
        "SUM", _sum, 1, None, "Sum of numbers; {Column} sums the whole column.", aggregate=True
    ),
    builtin(
        "AVERAGE", _average, 1, None, "Mean of numbers; #DIV/0! if there are none.", aggregate=True
    ),
    builtin("MIN", _min, 1, None, "Smallest number (0 if none).", aggregate=True),
    builtin("MAX", _max, 1, None, "Largest number (0 if none).", aggregate=True),
    builtin(
        "COUNT",
        _count,
        1,
        None,
        "How many arguments or column cells are numbers.",
        aggregate=True,
        kind="sees_errors",
    ),
    builtin(
        "COUNTA",
        _counta,
        1,
        None,
        "How many arguments or column cells are not blank.",
        aggregate=True,
        kind="sees_errors",
    ),
)
