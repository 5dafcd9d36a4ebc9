"""Logic and information built-ins.

``IF``, ``IFS``, ``SWITCH``, ``IFERROR`` and ``IFNA`` are lazy: they evaluate only the
branch they need, so a recursive custom function can stop (``IF(n = 0, 1, F(n - 1))``).
The ``IS...`` functions see error values instead of propagating them, as in a spreadsheet:
``ISNUMBER(1/0)`` is FALSE. ``IFERROR`` catches error *values*, including ``#LIMIT!`` from
an oversized number or text; it cannot catch a spent budget (steps, call depth), which
ends the whole evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.formula.context import Closure, EvalContext
from server.formula.errors import Signal
from server.formula.functions.spec import Builtin, builtin
from server.formula.values import (
    CYCLE,
    LIMIT,
    NA,
    SPREADSHEET_ERRORS,
    ErrorValue,
    compare,
    to_bool,
    to_int,
)


def _if(row: Any, ctx: EvalContext, args: Sequence[Closure]) -> object:
    if to_bool(args[0](row, ctx)):
        return args[1](row, ctx)
    return args[2](row, ctx) if len(args) > 2 else False


def _ifs(row: Any, ctx: EvalContext, args: Sequence[Closure]) -> object:
    if len(args) % 2:
        raise Signal(NA)  # unreachable through the compiler's arity check; defensive
    for i in range(0, len(args), 2):
        if to_bool(args[i](row, ctx)):
            return args[i + 1](row, ctx)
    raise Signal(NA)


def _switch(row: Any, ctx: EvalContext, args: Sequence[Closure]) -> object:
    subject = args[0](row, ctx)
    pairs = len(args) - 1
    for i in range(1, pairs - pairs % 2 + 1, 2):
        if compare(subject, args[i](row, ctx)) == 0:
            return args[i + 1](row, ctx)
    if pairs % 2:
        return args[-1](row, ctx)  # the default
    raise Signal(NA)


def _iferror(row: Any, ctx: EvalContext, args: Sequence[Closure]) -> object:
    try:
        return args[0](row, ctx)
    except Signal:
        return args[1](row, ctx)


def _ifna(row: Any, ctx: EvalContext, args: Sequence[Closure]) -> object:
    try:
        return args[0](row, ctx)
    except Signal as s:
        if s.error is not NA:
            raise
        return args[1](row, ctx)


def _choose(row: Any, ctx: EvalContext, args: Sequence[Closure]) -> object:
    index = to_int(args[0](row, ctx), 1, len(args) - 1)  # #VALUE! outside 1..N, as in Excel
    return args[index](row, ctx)


def _na(ctx: EvalContext) -> object:
    raise Signal(NA)


def _iserr(ctx: EvalContext, v: object) -> bool:
    return type(v) is ErrorValue and v != NA


def _isnontext(ctx: EvalContext, v: object) -> bool:
    return type(v) is not str


# Hypertab's own errors have no spreadsheet number; they get numbers no spreadsheet uses.
_ERROR_NUMBERS = {
    **{e: i + 1 for i, e in enumerate(SPREADSHEET_ERRORS)},
    CYCLE: 101,
    LIMIT: 102,
}


def _error_type(ctx: EvalContext, v: object) -> int:
    if type(v) is not ErrorValue:
        raise Signal(NA)
    return _ERROR_NUMBERS.get(v, 3)


def _and(ctx: EvalContext, *args: object) -> bool:
    return all([to_bool(a) for a in args])  # a list: every argument is checked, like Excel


def _or(ctx: EvalContext, *args: object) -> bool:
    return any([to_bool(a) for a in args])


def _xor(ctx: EvalContext, *args: object) -> bool:
    return sum(to_bool(a) for a in args) % 2 == 1


def _not(ctx: EvalContext, a: object) -> bool:
    return not to_bool(a)


def _true(ctx: EvalContext) -> bool:
    return True


def _false(ctx: EvalContext) -> bool:
    return False


def _blank(ctx: EvalContext) -> None:
    return None


def _isblank(ctx: EvalContext, v: object) -> bool:
    return v is None


def _iserror(ctx: EvalContext, v: object) -> bool:
    return type(v) is ErrorValue


def _isna(ctx: EvalContext, v: object) -> bool:
    return v == NA


def _isnumber(ctx: EvalContext, v: object) -> bool:
    return type(v) is int or type(v) is float


def _istext(ctx: EvalContext, v: object) -> bool:
    return type(v) is str


def _islogical(ctx: EvalContext, v: object) -> bool:
    return type(v) is bool


FUNCTIONS: tuple[Builtin, ...] = (
    builtin(
        "IF",
        _if,
        2,
        3,
        "The second argument if the condition is true, else the third.",
        kind="lazy",
    ),
    builtin(
        "IFS",
        _ifs,
        2,
        None,
        "The value after the first true condition; #N/A if none.",
        kind="lazy",
        arg_parity=0,
    ),
    builtin(
        "SWITCH",
        _switch,
        3,
        None,
        "The result paired with the first value equal to the subject, else the default.",
        kind="lazy",
    ),
    builtin(
        "IFERROR", _iferror, 2, 2, "The value, or the fallback if it is an error.", kind="lazy"
    ),
    builtin("IFNA", _ifna, 2, 2, "The value, or the fallback if it is #N/A.", kind="lazy"),
    builtin("CHOOSE", _choose, 2, None, "The N-th of the following values (1-based).", kind="lazy"),
    builtin("NA", _na, 0, 0, "The error value #N/A."),
    builtin(
        "ERROR.TYPE",
        _error_type,
        1,
        1,
        "The number of an error: #NULL! 1, #DIV/0! 2, #VALUE! 3, #REF! 4, #NAME? 5, #NUM! 6, "
        "#N/A 7 (#CYCLE! 101, #LIMIT! 102); #N/A if not an error.",
        kind="sees_errors",
    ),
    builtin(
        "ISERR", _iserr, 1, 1, "Whether the value is an error other than #N/A.", kind="sees_errors"
    ),
    builtin("ISNONTEXT", _isnontext, 1, 1, "Whether the value is not text.", kind="sees_errors"),
    builtin("AND", _and, 1, None, "TRUE if every argument is true."),
    builtin("OR", _or, 1, None, "TRUE if any argument is true."),
    builtin("XOR", _xor, 1, None, "TRUE if an odd number of arguments are true."),
    builtin("NOT", _not, 1, 1, "The opposite truth value."),
    builtin("TRUE", _true, 0, 0, "The value TRUE."),
    builtin("FALSE", _false, 0, 0, "The value FALSE."),
    builtin("BLANK", _blank, 0, 0, "A blank value."),
    builtin("ISBLANK", _isblank, 1, 1, "Whether the value is blank.", kind="sees_errors"),
    builtin("ISERROR", _iserror, 1, 1, "Whether the value is an error.", kind="sees_errors"),
    builtin("ISNA", _isna, 1, 1, "Whether the value is #N/A.", kind="sees_errors"),
    builtin("ISNUMBER", _isnumber, 1, 1, "Whether the value is a number.", kind="sees_errors"),
    builtin("ISTEXT", _istext, 1, 1, "Whether the value is text.", kind="sees_errors"),
    builtin(
        "ISLOGICAL", _islogical, 1, 1, "Whether the value is TRUE or FALSE.", kind="sees_errors"
    ),
)
