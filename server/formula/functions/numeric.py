"""Math built-ins and the arithmetic shared with the operators.

Every operation that can grow a number faster than linearly (``^``, ``POWER``, ``EXP``)
estimates the magnitude of its result from logarithms *before* computing it, so
``9^(9^9)`` is refused in constant time instead of building a 370-million-digit integer.
Rounding is decimal and half away from zero, like a spreadsheet (``ROUND(2.675, 2)`` is
2.68, where Python's ``round`` gives 2.67).
"""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Context, Decimal, InvalidOperation

from server.formula.context import EvalContext
from server.formula.errors import Signal
from server.formula.functions.spec import Builtin, builtin
from server.formula.values import DIV0, LIMIT, NUM, Number, to_int, to_number

_DECIMAL = Context(prec=400)


def power(a: Number, b: Number, max_number: float) -> Number:
    """``a ^ b`` with Excel's domain rules, refusing results beyond ``max_number`` unbuilt."""
    if a == 0:
        if b < 0:
            raise Signal(DIV0)
        if b == 0:
            raise Signal(NUM)
        return 0
    if a < 0 and not float(b).is_integer():
        raise Signal(NUM)
    magnitude = abs(a)
    if magnitude != 1 and b * math.log10(magnitude) > math.log10(max_number):
        raise Signal(LIMIT)
    if type(a) is int and type(b) is int and b >= 0:
        exact: int = a**b  # exact, and at most ~300 digits after the check above
        return exact
    result: float = float(a) ** float(b)
    if not -max_number <= result <= max_number:
        raise Signal(LIMIT)
    return result


def _abs(ctx: EvalContext, x: object) -> Number:
    return abs(to_number(x))


def _round_with(x: object, digits: object, mode: str) -> Number:
    n = to_number(x)
    d = to_int(digits, -400, 400)
    if type(n) is int and d >= 0:
        return n
    exact = Decimal(n) if type(n) is int else Decimal(repr(float(n)))
    try:
        q = exact.quantize(Decimal((0, (1,), -d)), rounding=mode, context=_DECIMAL)
    except InvalidOperation:
        return n  # more digits asked than the number has: nothing to round
    return int(q) if type(n) is int else float(q)


def _round(ctx: EvalContext, x: object, digits: object = 0) -> Number:
    return _round_with(x, digits, ROUND_HALF_UP)


def _roundup(ctx: EvalContext, x: object, digits: object = 0) -> Number:
    return _round_with(x, digits, ROUND_UP)


def _rounddown(ctx: EvalContext, x: object, digits: object = 0) -> Number:
    return _round_with(x, digits, ROUND_DOWN)


def _int(ctx: EvalContext, x: object) -> Number:
    return math.floor(to_number(x))


def _mod(ctx: EvalContext, a: object, b: object) -> Number:
    x, y = to_number(a), to_number(b)
    if y == 0:
        raise Signal(DIV0)
    return x % y  # Python's % takes the divisor's sign, as Excel's MOD does


def _power(ctx: EvalContext, a: object, b: object) -> Number:
    return power(to_number(a), to_number(b), ctx.limits.max_number)


def _sqrt(ctx: EvalContext, x: object) -> Number:
    n = to_number(x)
    if n < 0:
        raise Signal(NUM)
    return math.sqrt(n)


def _sign(ctx: EvalContext, x: object) -> int:
    n = to_number(x)
    return (n > 0) - (n < 0)


def _exp(ctx: EvalContext, x: object) -> float:
    n = to_number(x)
    if n > math.log(ctx.limits.max_number):
        raise Signal(LIMIT)
    return math.exp(n)


def _ln(ctx: EvalContext, x: object) -> float:
    n = to_number(x)
    if n <= 0:
        raise Signal(NUM)
    return math.log(n)


def _log10(ctx: EvalContext, x: object) -> float:
    n = to_number(x)
    if n <= 0:
        raise Signal(NUM)
    return math.log10(n)


def _pi(ctx: EvalContext) -> float:
    return math.pi


def _to_multiple(x: object, significance: object, up: bool) -> Number:
    n, s = to_number(x), to_number(significance)
    if s == 0:
        return 0
    if n > 0 and s < 0:
        raise Signal(NUM)
    q = n / s
    steps = math.ceil(q) if up == (s > 0) else math.floor(q)
    return steps * s


def _ceiling(ctx: EvalContext, x: object, significance: object = 1) -> Number:
    return _to_multiple(x, significance, up=True)


def _floor(ctx: EvalContext, x: object, significance: object = 1) -> Number:
    return _to_multiple(x, significance, up=False)


FUNCTIONS: tuple[Builtin, ...] = (
    builtin("ABS", _abs, 1, 1, "Absolute value."),
    builtin("ROUND", _round, 1, 2, "Round to N decimals (default 0), halves away from zero."),
    builtin("ROUNDUP", _roundup, 1, 2, "Round away from zero to N decimals."),
    builtin("ROUNDDOWN", _rounddown, 1, 2, "Round toward zero to N decimals."),
    builtin("INT", _int, 1, 1, "Round down to the nearest integer."),
    builtin("MOD", _mod, 2, 2, "Remainder of a division, with the divisor's sign."),
    builtin("POWER", _power, 2, 2, "A number raised to a power (same as ^)."),
    builtin("SQRT", _sqrt, 1, 1, "Square root; #NUM! for negatives."),
    builtin("SIGN", _sign, 1, 1, "1, 0 or -1 by the sign of a number."),
    builtin("EXP", _exp, 1, 1, "e raised to a power."),
    builtin("LN", _ln, 1, 1, "Natural logarithm; #NUM! unless positive."),
    builtin("LOG10", _log10, 1, 1, "Base-10 logarithm; #NUM! unless positive."),
    builtin("PI", _pi, 0, 0, "The number pi."),
    builtin("CEILING", _ceiling, 1, 2, "Round up to a multiple of a significance (default 1)."),
    builtin("FLOOR", _floor, 1, 2, "Round down to a multiple of a significance (default 1)."),
)
