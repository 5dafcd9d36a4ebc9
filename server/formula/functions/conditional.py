"""Conditional aggregates over whole columns: COUNTIF, SUMIF, AVERAGEIF and COUNTIFS,
SUMIFS, AVERAGEIFS, MAXIFS, MINIFS.

How it works: every answer is memoised in the evaluation context (one recompute pass over
one snapshot) under the function, its columns and its parsed criteria, so a formula like
``SUMIF({Cat}, {Cat}, {Amount})`` costs one pass over the table per distinct category, not
one per row. Equality criteria without wildcards are answered from a grouping of the
criteria columns built once per context (a dictionary from the cells' keys to row
positions); other criteria test the cells of the candidate rows. Every scan is charged to
the context's scan budget (``Limits.max_scan_cells``), so distinct criteria in every row
of a huge table end as ``#LIMIT!`` instead of running for hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from server.formula.context import ColumnView, EvalContext
from server.formula.errors import Abort, Signal
from server.formula.functions.criteria import Criterion, cell_key, parse_criterion
from server.formula.functions.spec import MAX_VARIADIC, Builtin, builtin
from server.formula.values import DIV0, ErrorValue, Number


def _group(ctx: EvalContext, views: tuple[ColumnView, ...]) -> dict[tuple[Any, ...], list[int]]:
    """Row positions by the tuple of the cells' keys in ``views``, once per context."""
    memo_key = ("group", *(id(v) for v in views))
    found = ctx.memo.get(memo_key)
    if found is not None:
        return found[1]  # type: ignore[no-any-return]
    length = min(len(v.values) for v in views)
    ctx.charge_scan(length * len(views))
    groups: dict[tuple[Any, ...], list[int]] = {}
    columns = [v.values for v in views]
    for i in range(length):
        key = tuple(cell_key(c[i]) for c in columns)
        groups.setdefault(key, []).append(i)
    ctx.memo[memo_key] = (views, groups)  # the views are kept so their ids stay unique
    return groups


def _positions(ctx: EvalContext, pairs: Sequence[tuple[ColumnView, Criterion]]) -> list[int]:
    """The row positions meeting every criterion."""
    keyed = [(view, c, c.key()) for view, c in pairs]
    exact = [(view, k) for view, _, k in keyed if k is not None]
    rest = [(view, c) for view, c, k in keyed if k is None]
    if exact:
        groups = _group(ctx, tuple(view for view, _ in exact))
        candidates: Sequence[int] = groups.get(tuple(k for _, k in exact), [])
    else:
        candidates = range(min(len(view.values) for view, _ in pairs))
    if not rest:
        return list(candidates)
    budget = ctx.limits.max_scan_cells - ctx.scanned
    spent = 0
    out: list[int] = []
    for i in candidates:
        for view, criterion in rest:
            cell = view.values[i] if i < len(view.values) else None
            spent += criterion.cost(cell)
            if not criterion.matches(cell):
                break
        else:
            out.append(i)
        if spent > budget:
            raise Abort
    ctx.charge_scan(spent)
    return out


@lru_cache(maxsize=4096, typed=True)  # typed: TRUE and 1 are different criteria
def _cached_criterion(value: object) -> Criterion:
    return parse_criterion(value)


def _criterion(value: object) -> Criterion:
    """The parsed criterion; short ones (the usual ones) are parsed once per process."""
    if type(value) is ErrorValue or (type(value) is str and len(value) > 256):
        return parse_criterion(value)
    return _cached_criterion(value)


def _answer(
    ctx: EvalContext, kind: str, target: ColumnView | None, args: Sequence[object]
) -> Number:
    """``kind`` (COUNT SUM AVERAGE MAX MIN) of ``target`` over rows meeting the criteria
    given as alternating column views and criteria in ``args``."""
    pairs: list[tuple[ColumnView, Criterion]] = []
    for i in range(0, len(args), 2):
        pairs.append((args[i], _criterion(args[i + 1])))  # type: ignore[arg-type]
    memo_key = (
        kind,
        id(target),
        *((id(view), c.op, c.kind, c.value) for view, c in pairs),
    )
    found = ctx.memo.get(memo_key)
    if found is not None:
        return found[1]  # type: ignore[no-any-return]
    positions = _positions(ctx, pairs)
    result: Number
    if kind == "COUNT" or target is None:
        result = len(positions)
    else:
        values = target.values
        numbers: list[Number] = []
        for i in positions:
            if i < len(values):
                v = values[i]
                t = type(v)
                if t is int or t is float:
                    numbers.append(v)  # type: ignore[arg-type]
                elif t is ErrorValue:
                    raise Signal(v)  # type: ignore[arg-type]
        if kind == "SUM":
            result = sum(numbers)
        elif kind == "AVERAGE":
            if not numbers:
                raise Signal(DIV0)
            result = sum(numbers) / len(numbers)
        elif kind == "MAX":
            result = max(numbers, default=0)
        else:
            result = min(numbers, default=0)
    ctx.memo[memo_key] = ((target, *(view for view, _ in pairs)), result)
    return result


def _countif(ctx: EvalContext, column: ColumnView, criterion: object) -> Number:
    return _answer(ctx, "COUNT", None, (column, criterion))


def _sumif(
    ctx: EvalContext, column: ColumnView, criterion: object, total: ColumnView | None = None
) -> Number:
    return _answer(ctx, "SUM", total if total is not None else column, (column, criterion))


def _averageif(
    ctx: EvalContext, column: ColumnView, criterion: object, values: ColumnView | None = None
) -> Number:
    return _answer(ctx, "AVERAGE", values if values is not None else column, (column, criterion))


def _countifs(ctx: EvalContext, *args: object) -> Number:
    return _answer(ctx, "COUNT", None, args)


def _sumifs(ctx: EvalContext, total: ColumnView, *args: object) -> Number:
    return _answer(ctx, "SUM", total, args)


def _averageifs(ctx: EvalContext, values: ColumnView, *args: object) -> Number:
    return _answer(ctx, "AVERAGE", values, args)


def _maxifs(ctx: EvalContext, values: ColumnView, *args: object) -> Number:
    return _answer(ctx, "MAX", values, args)


def _minifs(ctx: EvalContext, values: ColumnView, *args: object) -> Number:
    return _answer(ctx, "MIN", values, args)


_EVEN = tuple(range(0, MAX_VARIADIC, 2))
_ODD_AND_FIRST = (0, *range(1, MAX_VARIADIC, 2))

FUNCTIONS: tuple[Builtin, ...] = (
    builtin(
        "COUNTIF",
        _countif,
        2,
        2,
        'How many cells of a column meet a criterion (5, ">=10", "a*", "<>x").',
        column_params=(0,),
    ),
    builtin(
        "SUMIF",
        _sumif,
        2,
        3,
        "Sum of a column (or of a second column) over the rows meeting a criterion.",
        column_params=(0, 2),
    ),
    builtin(
        "AVERAGEIF",
        _averageif,
        2,
        3,
        "Mean of a column (or of a second column) over the rows meeting a criterion.",
        column_params=(0, 2),
    ),
    builtin(
        "COUNTIFS",
        _countifs,
        2,
        None,
        "How many rows meet every (column, criterion) pair.",
        column_params=_EVEN,
        arg_parity=0,
    ),
    builtin(
        "SUMIFS",
        _sumifs,
        3,
        None,
        "Sum of a column over the rows meeting every (column, criterion) pair.",
        column_params=_ODD_AND_FIRST,
        arg_parity=1,
    ),
    builtin(
        "AVERAGEIFS",
        _averageifs,
        3,
        None,
        "Mean of a column over the rows meeting every (column, criterion) pair.",
        column_params=_ODD_AND_FIRST,
        arg_parity=1,
    ),
    builtin(
        "MAXIFS",
        _maxifs,
        3,
        None,
        "Largest number of a column over the rows meeting every pair (0 if none).",
        column_params=_ODD_AND_FIRST,
        arg_parity=1,
    ),
    builtin(
        "MINIFS",
        _minifs,
        3,
        None,
        "Smallest number of a column over the rows meeting every pair (0 if none).",
        column_params=_ODD_AND_FIRST,
        arg_parity=1,
    ),
)
