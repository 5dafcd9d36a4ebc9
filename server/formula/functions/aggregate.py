"""Aggregates and statistics over whole columns and/or scalar arguments: SUM, AVERAGE, MIN,
MAX, COUNT, COUNTA, PRODUCT, MEDIAN, MODE, STDEV, VAR, LARGE, SMALL, RANK, COUNTBLANK,
SUMPRODUCT.

Figures of a column given alone (its sorted numbers, variance...) are computed once per
evaluation context, so ``RANK({x}, {x})`` in every row of 100,000 costs one sort, not
100,000.

A bare ``{Column}`` argument means the whole column (a :class:`ColumnStats` scanned once
per evaluation context). Like a spreadsheet range, a column contributes only its numbers
(booleans and numeric text in cells are skipped) and an error value in it propagates.
Scalar arguments are coerced like operands: ``SUM("3", TRUE)`` is 4.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
from typing import Any

from server.formula.context import ColumnStats, EvalContext
from server.formula.errors import Signal
from server.formula.functions.spec import Builtin, builtin
from server.formula.values import (
    DIV0,
    NA,
    NUM,
    VALUE,
    ErrorValue,
    Number,
    parse_number,
    to_int,
    to_number,
    too_big,
)


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
        t = type(a)
        if t is ColumnStats:
            n += a.count  # type: ignore[attr-defined]
        elif t is int or t is float or t is bool:
            n += 1  # a boolean given directly counts, as in a spreadsheet
        elif t is str and parse_number(a) is not None:  # type: ignore[arg-type]
            n += 1  # so does text that spells a number ("1"); in a column neither does
    return n


def _counta(ctx: EvalContext, *args: object) -> int:
    n = 0
    for a in args:
        if type(a) is ColumnStats:
            n += a.counta
        elif a is not None:  # an error value or empty text given directly counts
            n += 1
    return n


_BASICS: tuple[Builtin, ...] = (
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


def _all_numbers(args: tuple[object, ...]) -> list[Number]:
    """Every number of the arguments (whole columns contribute their numbers)."""
    out: list[Number] = []
    for part in _numbers(args):
        if isinstance(part, ColumnStats):
            out.extend(part.numbers)
        else:
            out.append(part[0])
    return out


def _figure(args: tuple[object, ...], key: str, compute: Callable[[list[Number]], Any]) -> Any:
    """``compute`` over the numbers of ``args``; once per context for a column alone."""
    if len(args) == 1 and type(args[0]) is ColumnStats:
        stats = args[0]
        if stats.error is not None:
            raise Signal(stats.error)
        return stats.cached(key, compute)
    return compute(_all_numbers(args))


def _sorted(numbers: list[Number]) -> list[Number]:
    return sorted(numbers)


def _median_of(numbers: list[Number]) -> Number:
    if not numbers:
        raise Signal(NUM)
    s = sorted(numbers)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def _median(ctx: EvalContext, *args: object) -> Number:
    return _figure(args, "median", _median_of)  # type: ignore[no-any-return]


def _mode_of(numbers: list[Number]) -> Number:
    counts: dict[Number, int] = {}
    for n in numbers:
        counts[n] = counts.get(n, 0) + 1
    best = max(counts.values(), default=0)
    if best < 2:
        raise Signal(NA)  # no value repeats, as in a spreadsheet
    for n in numbers:  # ties: the one that appears first
        if counts[n] == best:
            return n
    raise Signal(NA)  # pragma: no cover - best came from counts


def _mode(ctx: EvalContext, *args: object) -> Number:
    return _figure(args, "mode", _mode_of)  # type: ignore[no-any-return]


def _variance_of(sample: bool) -> Callable[[list[Number]], float]:
    def variance(numbers: list[Number]) -> float:
        n = len(numbers)
        if n < (2 if sample else 1):
            raise Signal(DIV0)
        mean = math.fsum(numbers) / n
        return math.fsum((x - mean) ** 2 for x in numbers) / (n - 1 if sample else n)

    return variance


_VAR_S = _variance_of(sample=True)
_VAR_P = _variance_of(sample=False)


def _var_s(ctx: EvalContext, *args: object) -> float:
    return _figure(args, "var.s", _VAR_S)  # type: ignore[no-any-return]


def _var_p(ctx: EvalContext, *args: object) -> float:
    return _figure(args, "var.p", _VAR_P)  # type: ignore[no-any-return]


def _stdev_s(ctx: EvalContext, *args: object) -> float:
    return math.sqrt(_var_s(ctx, *args))


def _stdev_p(ctx: EvalContext, *args: object) -> float:
    return math.sqrt(_var_p(ctx, *args))


def _product(ctx: EvalContext, *args: object) -> Number:
    numbers = _figure(args, "numbers", list)
    if not numbers:
        return 0  # spreadsheets give 0 for PRODUCT of nothing
    total: Number = 1
    top = ctx.limits.max_number
    for n in numbers:
        total *= n
        if not -top <= total <= top:
            raise Signal(too_big(top))
        if total == 0:
            return 0
    return total


def _kth(args: tuple[object, ...], k: object, largest: bool) -> Number:
    ordered: list[Number] = _figure(args, "sorted", _sorted)
    i = to_int(k, -(2**31), 2**31)
    if not 1 <= i <= len(ordered):
        raise Signal(NUM)
    return ordered[-i] if largest else ordered[i - 1]


def _large(ctx: EvalContext, values: object, k: object) -> Number:
    return _kth((values,), k, largest=True)


def _small(ctx: EvalContext, values: object, k: object) -> Number:
    return _kth((values,), k, largest=False)


def _rank(ctx: EvalContext, number: object, values: object, order: object = 0) -> int:
    n = to_number(number)
    ordered: list[Number] = _figure((values,), "sorted", _sorted)
    lo = bisect.bisect_left(ordered, n)
    hi = bisect.bisect_right(ordered, n)
    if lo == hi:
        raise Signal(NA)  # the number is not in the list
    if to_number(order) == 0:
        return len(ordered) - hi + 1  # descending: 1 + how many are larger
    return lo + 1


def _countblank(ctx: EvalContext, column: object) -> int:
    if type(column) is not ColumnStats:
        return 1 if column is None or column == "" else 0
    return len(column.values) - column.counta


def _sumproduct(ctx: EvalContext, *args: object) -> Number:
    if all(type(a) is not ColumnStats for a in args):
        total: Number = 1
        for a in args:
            total *= to_number(a)
        return total
    if any(type(a) is not ColumnStats for a in args):
        raise Signal(VALUE)  # a column and a single value do not have the same shape
    columns = [a.values for a in args if isinstance(a, ColumnStats)]
    key = ("SUMPRODUCT", *(id(a) for a in args))
    found = ctx.memo.get(key)
    if found is not None:
        return found[1]  # type: ignore[no-any-return]
    length = len(columns[0])
    if any(len(c) != length for c in columns):
        raise Signal(VALUE)
    ctx.charge_scan(length * len(columns))
    result: Number = 0
    for cells in zip(*columns, strict=True):
        product: Number = 1
        for v in cells:
            t = type(v)
            if t is ErrorValue:
                raise Signal(v)
            if t is not int and t is not float:
                product = 0  # text, booleans and blanks count as 0, as in a spreadsheet
                break
            product *= v
        result += product
    ctx.memo[key] = (args, result)  # the stats are kept so their ids stay unique
    return result


STATISTICS: tuple[Builtin, ...] = (
    builtin("PRODUCT", _product, 1, None, "Product of numbers (0 if none).", aggregate=True),
    builtin("MEDIAN", _median, 1, None, "The middle number; #NUM! if none.", aggregate=True),
    builtin(
        "MODE", _mode, 1, None, "The most frequent number; #N/A if none repeats.", aggregate=True
    ),
    builtin("MODE.SNGL", _mode, 1, None, "Same as MODE.", aggregate=True),
    builtin("STDEV", _stdev_s, 1, None, "Sample standard deviation.", aggregate=True),
    builtin("STDEV.S", _stdev_s, 1, None, "Same as STDEV.", aggregate=True),
    builtin("STDEVP", _stdev_p, 1, None, "Population standard deviation.", aggregate=True),
    builtin("STDEV.P", _stdev_p, 1, None, "Same as STDEVP.", aggregate=True),
    builtin("VAR", _var_s, 1, None, "Sample variance.", aggregate=True),
    builtin("VAR.S", _var_s, 1, None, "Same as VAR.", aggregate=True),
    builtin("VARP", _var_p, 1, None, "Population variance.", aggregate=True),
    builtin("VAR.P", _var_p, 1, None, "Same as VARP.", aggregate=True),
    builtin("LARGE", _large, 2, 2, "The k-th largest number of a column.", stats_params=(0,)),
    builtin("SMALL", _small, 2, 2, "The k-th smallest number of a column.", stats_params=(0,)),
    builtin(
        "RANK",
        _rank,
        2,
        3,
        "Rank of a number in a column: order 0 (default) largest first, else smallest first.",
        stats_params=(1,),
    ),
    builtin("RANK.EQ", _rank, 2, 3, "Same as RANK.", stats_params=(1,)),
    builtin(
        "COUNTBLANK",
        _countblank,
        1,
        1,
        "How many cells of a column are blank or empty text.",
        aggregate=True,
    ),
    builtin(
        "SUMPRODUCT",
        _sumproduct,
        1,
        None,
        "Sum of the row-by-row products of whole columns (non-numbers count as 0).",
        aggregate=True,
    ),
)

FUNCTIONS: tuple[Builtin, ...] = _BASICS + STATISTICS
