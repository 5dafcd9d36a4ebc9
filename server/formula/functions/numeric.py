"""Math built-ins and the arithmetic shared with the operators.

Every operation that can grow a number faster than linearly (``^``, ``POWER``, ``EXP``)
estimates the magnitude of its result from logarithms *before* computing it, so
``9^(9^9)`` is refused in constant time instead of building a 370-million-digit integer.
Rounding is decimal and half away from zero, like a spreadsheet (``ROUND(2.675, 2)`` is
2.68, where Python's ``round`` gives 2.67).
"""

from __future__ import annotations

import math
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_UP,
    ROUND_UP,
    Context,
    Decimal,
    InvalidOperation,
)

from server.formula.context import EvalContext
from server.formula.errors import Signal
from server.formula.functions.spec import Builtin, builtin
from server.formula.values import DIV0, NUM, Number, to_int, to_number, too_big

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
    if magnitude != 1 and b * math.log10(magnitude) > math.log10(max_number) + 1e-12:
        raise Signal(too_big(max_number))
    if type(a) is int and type(b) is int and b >= 0:
        exact: int = a**b  # exact, and at most ~300 digits after the check above
        return exact
    try:
        result: float = float(a) ** float(b)
    except OverflowError:
        raise Signal(too_big(max_number)) from None
    if not -max_number <= result <= max_number:
        raise Signal(too_big(max_number))
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
        raise Signal(too_big(ctx.limits.max_number))
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


def _exact(n: Number) -> Decimal:
    return Decimal(n) if type(n) is int else Decimal(repr(float(n)))


def _multiple(n: Number, s: Number, rounding: str) -> Number:
    """``n`` rounded to a multiple of ``s`` (> 0) in decimal, so ``FLOOR(0.6, 0.2)`` is
    0.6 rather than 0.4 as binary floating point would say."""
    q = (_exact(n) / _exact(s)).to_integral_value(rounding=rounding)
    r = q * _exact(s)
    return int(r) if type(n) is int and type(s) is int else float(r)


def _ceiling(ctx: EvalContext, x: object, significance: object = 1) -> Number:
    n, s = to_number(x), to_number(significance)
    if n == 0 or s == 0:
        return 0
    if n > 0 and s < 0:
        raise Signal(NUM)
    if s < 0:  # both negative: away from zero, as Excel's CEILING(-2.1, -1) = -3
        return -_multiple(-n, -s, ROUND_CEILING)
    return _multiple(n, s, ROUND_CEILING)


def _floor(ctx: EvalContext, x: object, significance: object = 1) -> Number:
    n, s = to_number(x), to_number(significance)
    if s == 0:
        if n == 0:
            return 0
        raise Signal(DIV0)
    if n == 0:
        return 0
    if n > 0 and s < 0:
        raise Signal(NUM)
    if s < 0:  # both negative: toward zero, as Excel's FLOOR(-2.1, -1) = -2
        return -_multiple(-n, -s, ROUND_FLOOR)
    return _multiple(n, s, ROUND_FLOOR)


def _ceiling_math(
    ctx: EvalContext, x: object, significance: object = 1, mode: object = 0
) -> Number:
    n, s = to_number(x), abs(to_number(significance))
    if s == 0 or n == 0:
        return 0
    if n < 0 and to_number(mode) != 0:  # negative numbers away from zero on request
        return -_multiple(-n, s, ROUND_CEILING)
    return _multiple(n, s, ROUND_CEILING)


def _floor_math(ctx: EvalContext, x: object, significance: object = 1, mode: object = 0) -> Number:
    n, s = to_number(x), abs(to_number(significance))
    if s == 0 or n == 0:
        return 0
    if n < 0 and to_number(mode) != 0:  # negative numbers toward zero on request
        return -_multiple(-n, s, ROUND_FLOOR)
    return _multiple(n, s, ROUND_FLOOR)


def _mround(ctx: EvalContext, x: object, multiple: object) -> Number:
    n, m = to_number(x), to_number(multiple)
    if m == 0 or n == 0:
        return 0
    if (n > 0) != (m > 0):
        raise Signal(NUM)
    if m < 0:
        return -_multiple(-n, -m, ROUND_HALF_UP)
    return _multiple(n, m, ROUND_HALF_UP)


def _trunc(ctx: EvalContext, x: object, digits: object = 0) -> Number:
    return _round_with(x, digits, ROUND_DOWN)


def _quotient(ctx: EvalContext, a: object, b: object) -> int:
    x, y = to_number(a), to_number(b)
    if y == 0:
        raise Signal(DIV0)
    return int(_exact(x) / _exact(y))  # toward zero


def _log(ctx: EvalContext, x: object, base: object = 10) -> float:
    n, b = to_number(x), to_number(base)
    if n <= 0 or b <= 0:
        raise Signal(NUM)
    if b == 1:
        raise Signal(DIV0)
    return math.log10(n) if b == 10 else math.log(n) / math.log(b)


def _even_odd(n: Number, odd: bool) -> Number:
    magnitude = math.ceil(abs(n))
    if odd:
        magnitude = magnitude if magnitude % 2 == 1 else magnitude + 1
    elif magnitude % 2:
        magnitude += 1
    return magnitude if n >= 0 else -magnitude


def _even(ctx: EvalContext, x: object) -> Number:
    return _even_odd(to_number(x), odd=False)


def _odd(ctx: EvalContext, x: object) -> Number:
    return _even_odd(to_number(x), odd=True)


def _iseven(ctx: EvalContext, x: object) -> bool:
    return math.floor(abs(to_number(x))) % 2 == 0


def _isodd(ctx: EvalContext, x: object) -> bool:
    return math.floor(abs(to_number(x))) % 2 == 1


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
    builtin(
        "CEILING",
        _ceiling,
        1,
        2,
        "Round up to a multiple of a significance (default 1); both negative: away from zero.",
    ),
    builtin(
        "FLOOR",
        _floor,
        1,
        2,
        "Round down to a multiple of a significance (default 1); both negative: toward zero.",
    ),
    builtin(
        "CEILING.MATH",
        _ceiling_math,
        1,
        3,
        "Round up to a multiple (sign ignored); mode <> 0 rounds negatives away from zero.",
    ),
    builtin(
        "FLOOR.MATH",
        _floor_math,
        1,
        3,
        "Round down to a multiple (sign ignored); mode <> 0 rounds negatives toward zero.",
    ),
    builtin("MROUND", _mround, 2, 2, "Round to the nearest multiple (halves away from zero)."),
    builtin("TRUNC", _trunc, 1, 2, "Cut a number to N decimals (toward zero)."),
    builtin("QUOTIENT", _quotient, 2, 2, "Integer part of a division (toward zero)."),
    builtin("LOG", _log, 1, 2, "Logarithm to a base (default 10)."),
    builtin("EVEN", _even, 1, 1, "Round away from zero to an even integer."),
    builtin("ODD", _odd, 1, 1, "Round away from zero to an odd integer."),
    builtin("ISEVEN", _iseven, 1, 1, "Whether the integer part of a number is even."),
    builtin("ISODD", _isodd, 1, 1, "Whether the integer part of a number is odd."),
)
