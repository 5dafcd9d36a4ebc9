"""Lookups over whole columns of the table: XLOOKUP, VLOOKUP, MATCH, INDEX.

Column arguments must be bare column references (``{Name}``); the compiler enforces it.
``VLOOKUP(value, {Keys}, {Results}, [approximate])`` is the column form of the spreadsheet
function: the key column and the result column are named instead of a range and an index.

* Exact matching (text case-insensitive, TRUE never equal to 1, numbers equal at 15
  significant digits) goes through an index built once per evaluation context, so a lookup
  per row costs one dictionary probe, not a column scan. A text needle with wildcards
  (``"a*"``; ``MATCH`` type 0, ``VLOOKUP`` exact, ``XLOOKUP`` match mode 2) scans the column
  once per distinct needle, charged to the context's scan budget.
* Approximate matching as spreadsheets do it (``MATCH`` type 1, the default, and -1;
  ``VLOOKUP`` approximate, the default) is a binary search over the cells of the needle's
  kind in column order, so on a column sorted as the function requires the answer is the
  spreadsheet's (the last of equal keys); on an unsorted column it is unspecified, as there.
* ``XLOOKUP`` match modes -1 and 1 (next smaller / next larger) need no sorting: a sorted
  copy of the column is built once per context and searched.
"""

from __future__ import annotations

import bisect
from typing import Any

from server.formula.context import ColumnView, EvalContext, lookup_key
from server.formula.errors import Signal
from server.formula.functions.spec import Builtin, builtin
from server.formula.functions.wildcard import compile_pattern, fold, has_wildcards
from server.formula.values import NA, REF, VALUE, CellValue, ErrorValue, to_bool, to_int, to_number

_PLAIN = frozenset({type(None), bool, int, float, str})


def cell(v: object) -> CellValue:
    """A value read from a column: errors propagate, foreign types are ``#VALUE!``."""
    t = type(v)
    if t in _PLAIN:
        return v  # type: ignore[return-value]
    if t is ErrorValue:
        raise Signal(v)  # type: ignore[arg-type]
    raise Signal(VALUE)


def _needle_key(needle: object) -> tuple[int, Any]:
    key = lookup_key(needle)
    if key is None:
        if type(needle) is ErrorValue:
            raise Signal(needle)
        raise Signal(NA)  # a blank needle matches nothing
    return key


def _memo(ctx: EvalContext, key: tuple[object, ...], view: ColumnView, build: Any) -> Any:
    found = ctx.memo.get(key)
    if found is None:
        ctx.charge_scan(len(view.values))
        found = ctx.memo[key] = (view, build())  # the view is kept so its id stays unique
    return found[1]


def _by_kind(ctx: EvalContext, view: ColumnView) -> dict[int, tuple[list[Any], list[int]]]:
    """The keys and positions of each kind of cell (numbers, text, booleans), in order."""

    def build() -> dict[int, tuple[list[Any], list[int]]]:
        out: dict[int, tuple[list[Any], list[int]]] = {}
        for i, v in enumerate(view.values):
            key = lookup_key(v)
            if key is not None:
                keys, positions = out.setdefault(key[0], ([], []))
                keys.append(key[1])
                positions.append(i)
        return out

    return _memo(ctx, ("kinds", id(view)), view, build)  # type: ignore[no-any-return]


def _sorted_kind(ctx: EvalContext, view: ColumnView, kind: int) -> tuple[list[Any], list[int]]:
    """The keys of one kind sorted (ties by position), with their positions."""

    def build() -> tuple[list[Any], list[int]]:
        keys, positions = _by_kind(ctx, view).get(kind, ([], []))
        pairs = sorted(zip(keys, positions, strict=True))
        return [k for k, _ in pairs], [p for _, p in pairs]

    return _memo(ctx, ("sorted", id(view), kind), view, build)  # type: ignore[no-any-return]


def _last_positions(ctx: EvalContext, view: ColumnView) -> dict[tuple[int, Any], int]:
    def build() -> dict[tuple[int, Any], int]:
        out: dict[tuple[int, Any], int] = {}
        for i, v in enumerate(view.values):
            key = lookup_key(v)
            if key is not None:
                out[key] = i
        return out

    return _memo(ctx, ("last", id(view)), view, build)  # type: ignore[no-any-return]


def _wildcard_position(ctx: EvalContext, view: ColumnView, needle: str, last: bool) -> int | None:
    pattern = compile_pattern(needle)

    def build() -> int | None:
        found = None
        for i, v in enumerate(view.values):
            if type(v) is str:
                ctx.charge_scan(pattern.cost(len(v)) // 64)
                if pattern.fullmatch(fold(v)):
                    found = i
                    if not last:
                        break
        return found

    return _memo(ctx, ("wild", id(view), needle, last), view, build)  # type: ignore[no-any-return]


def exact_position(
    ctx: EvalContext, view: ColumnView, needle: object, *, wildcards: bool, last: bool = False
) -> int | None:
    """0-based position of the first (or last) cell equal to ``needle``."""
    if wildcards and type(needle) is str:
        folded = fold(needle)
        if has_wildcards(folded):
            return _wildcard_position(ctx, view, folded, last)
    key = _needle_key(needle)
    if last:
        return _last_positions(ctx, view).get(key)
    return view.position(needle)  # type: ignore[arg-type]


def _binary_search(
    ctx: EvalContext, view: ColumnView, needle: object, descending: bool
) -> int | None:
    """Spreadsheet approximate match: ascending, the last key <= needle; descending, the
    last key >= needle; among the cells of the needle's kind, in column order."""
    kind, value = _needle_key(needle)
    keys, positions = _by_kind(ctx, view).get(kind, ([], []))
    if not descending:
        at = bisect.bisect_right(keys, value) - 1
    else:
        lo, hi = 0, len(keys)  # keys[:lo] >= value, assuming a descending column
        while lo < hi:
            mid = (lo + hi) // 2
            if keys[mid] >= value:
                lo = mid + 1
            else:
                hi = mid
        at = lo - 1
    return positions[at] if at >= 0 else None


def _nearest(
    ctx: EvalContext, view: ColumnView, needle: object, larger: bool, last: bool
) -> int | None:
    """XLOOKUP's next smaller / next larger: an exact match, else the closest key on that
    side (the first or last row holding it)."""
    kind, value = _needle_key(needle)
    keys, positions = _sorted_kind(ctx, view, kind)
    if larger:
        at = bisect.bisect_left(keys, value)
        if at >= len(keys):
            return None
    else:
        at = bisect.bisect_right(keys, value) - 1
        if at < 0:
            return None
    target = keys[at]
    lo = bisect.bisect_left(keys, target)
    hi = bisect.bisect_right(keys, target) - 1
    return positions[hi] if last else positions[lo]


def _result(results: ColumnView, at: int) -> CellValue:
    return cell(results.values[at]) if at < len(results.values) else None


def _xlookup(
    ctx: EvalContext,
    needle: object,
    keys: ColumnView,
    results: ColumnView,
    if_not_found: object = NA,
    match_mode: object = 0,
    search_mode: object = 1,
) -> CellValue:
    if type(needle) is ErrorValue:
        raise Signal(needle)
    mode = to_int(match_mode, -1, 2)
    direction = to_int(search_mode, -2, 2)
    if direction not in (1, -1):
        raise Signal(VALUE)  # binary search modes (2, -2) are not offered
    last = direction == -1
    if mode == 0 or mode == 2:
        at = exact_position(ctx, keys, needle, wildcards=mode == 2, last=last)
    else:
        at = _nearest(ctx, keys, needle, larger=mode == 1, last=last)
    if at is None:
        if type(if_not_found) is ErrorValue:
            raise Signal(if_not_found)
        return if_not_found  # type: ignore[return-value]
    return _result(results, at)


def _vlookup(
    ctx: EvalContext,
    needle: object,
    keys: ColumnView,
    results: ColumnView,
    approximate: object = True,
) -> CellValue:
    if to_bool(approximate):
        at = _binary_search(ctx, keys, needle, descending=False)
    else:
        at = exact_position(ctx, keys, needle, wildcards=True)
    if at is None:
        raise Signal(NA)
    return _result(results, at)


def _match(ctx: EvalContext, needle: object, keys: ColumnView, match_type: object = 1) -> int:
    kind = to_number(match_type)
    if kind == 0:
        at = exact_position(ctx, keys, needle, wildcards=True)
    else:
        at = _binary_search(ctx, keys, needle, descending=kind < 0)
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
        6,
        "The value in a result column at the first row whose key column equals the value; "
        "match mode 0 exact, -1/1 next smaller/larger, 2 wildcards; search mode -1 from the end.",
        column_params=(1, 2),
        kind="sees_errors",  # an error fallback matters only when nothing is found
    ),
    builtin(
        "VLOOKUP",
        _vlookup,
        3,
        4,
        "The value in a result column at the row of a key: approximately in a sorted key "
        "column (default), or exactly when the fourth argument is FALSE.",
        column_params=(1, 2),
    ),
    builtin(
        "MATCH",
        _match,
        2,
        3,
        "1-based row position of a value in a column: type 1 (default) the last key <= it in "
        "an ascending column, 0 exact, -1 the last key >= it in a descending one; #N/A if none.",
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
