"""Cell values, error values, and the spreadsheet coercion rules between them.

Values in and out of the engine are ``None`` (blank), ``bool``, ``int``, ``float``, ``str``
and, out only (or in, from another formula column), :class:`ErrorValue`. Dates and times
are ISO-8601 text (``"2024-03-31"``, ``"2024-03-31T12:00:00"``): that is how cells store
them, ISO text sorts and compares in date order, and it needs no extra type on the wire.

Coercions follow spreadsheets: in arithmetic, blank is 0, TRUE is 1, numeric text is its
number (``"$1,000"``, ``"12%"``, ``"(5)"`` included: :func:`parse_number`) and other text is
``#VALUE!``; in text, numbers print with up to 15 significant digits (``0.1+0.2`` shows
``0.3``) and booleans as ``TRUE``/``FALSE``; comparisons order numbers < text < booleans,
text case-insensitively, blank as the other side's zero, and numbers equal at 15
significant digits are equal (``0.1+0.2 = 0.3``). A number beyond a double is ``#NUM!``.

Coercion helpers raise :class:`~server.formula.errors.Signal` carrying the error value;
the evaluator turns that into the cell's value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, TypeAlias

from server.formula.errors import Signal


@dataclass(frozen=True, slots=True)
class ErrorValue:
    """A spreadsheet error value such as ``#DIV/0!``; ``str()`` gives the code."""

    code: str

    def __str__(self) -> str:
        return self.code


DIV0: Final = ErrorValue("#DIV/0!")
"""Division by zero (also ``MOD(x, 0)``, ``AVERAGE`` of nothing)."""
VALUE: Final = ErrorValue("#VALUE!")
"""A value of the wrong type (``"a" + 1``, a bad date, a bad argument)."""
NAME: Final = ErrorValue("#NAME?")
"""An unknown function or name."""
REF: Final = ErrorValue("#REF!")
"""A reference to a column that does not exist, or an index outside a column."""
CYCLE: Final = ErrorValue("#CYCLE!")
"""The column is part of a reference cycle (given by the table layer; see dependencies)."""
LIMIT: Final = ErrorValue("#LIMIT!")
"""A hard bound of :class:`~server.formula.limits.Limits` was hit."""
NUM: Final = ErrorValue("#NUM!")
"""A numeric domain error (``SQRT(-1)``, a date out of range)."""
NA: Final = ErrorValue("#N/A")
"""A lookup found nothing (also ``NA()`` and the literal ``#N/A``)."""
NULL: Final = ErrorValue("#NULL!")
"""Spreadsheets' empty range intersection; here only the literal ``#NULL!``."""

ERRORS: Final[dict[str, ErrorValue]] = {
    e.code: e for e in (DIV0, VALUE, NAME, REF, CYCLE, LIMIT, NUM, NA, NULL)
}
"""Every error value by code."""

SPREADSHEET_ERRORS: Final = (NULL, DIV0, VALUE, REF, NAME, NUM, NA)
"""The error values spreadsheets share, in ``ERROR.TYPE`` order (1 to 7); they can be
written as literals (``#N/A``)."""

FLOAT_MAX: Final = 1.7976931348623157e308
"""The largest finite double: beyond it a result does not exist (``#NUM!``, as in Excel)."""

CellValue: TypeAlias = bool | int | float | str | ErrorValue | None
"""What a cell holds and what a formula returns."""

Number: TypeAlias = int | float


def error_value(code: str) -> ErrorValue | None:
    """The error value for ``code`` (e.g. a stored ``"#DIV/0!"``), or ``None``."""
    return ERRORS.get(code)


def fail(error: ErrorValue) -> Signal:
    """The signal that makes ``error`` the result (``raise fail(VALUE)``)."""
    return Signal(error)


# Anchored and free of nested quantifiers: linear time on any input.
_NUMBER_RE: Final = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_GROUPED_RE: Final = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d*)?", re.ASCII)
_MAX_NUMBER_TEXT: Final = 400


def parse_number(text: str) -> Number | None:
    """The number ``text`` spells as a spreadsheet reads it, else ``None``.

    Accepted (surrounding spaces allowed): ``"3"``, ``"-1.5e3"``, ``".5"``; a percent sign
    (``"12%"`` is 0.12); a dollar sign before the digits (``"$5"``, ``"-$5"``, ``"$-5"``);
    thousands separators in groups of three (``"1,000"``, ``"$1,234.50"``; ``"1,00"`` is
    not a number); accounting negatives in parentheses (``"(5)"`` is -5). Python's
    ``float()`` is not used directly: it accepts ``nan``, ``inf`` and ``1_000``, which no
    spreadsheet treats as numbers.
    """
    s = text.strip()
    if not s or len(s) > _MAX_NUMBER_TEXT:
        return None
    negative = False
    if s[0] == "(" and s[-1] == ")":
        negative, s = True, s[1:-1].strip()
    percent = s.endswith("%")
    if percent:
        s = s[:-1].rstrip()
    if s[:1] in ("+", "-"):
        negative, s = negative != (s[0] == "-"), s[1:]
    if s[:1] == "$":
        s = s[1:]
        if s[:1] in ("+", "-"):
            negative, s = negative != (s[0] == "-"), s[1:]
    if "," in s:
        if _GROUPED_RE.fullmatch(s) is None:
            return None
        s = s.replace(",", "")
    elif _NUMBER_RE.fullmatch(s) is None:
        return None
    value: Number
    if not percent and len(s) <= 18 and not any(c in s for c in ".eE"):
        value = int(s)
    else:
        value = float(s)
        if percent:
            value /= 100
    return -value if negative else value


def to_number(v: object) -> Number:
    """``v`` as a number for arithmetic, or raise the error value."""
    t = type(v)
    if t is int or t is float:
        return v  # type: ignore[return-value]
    if t is bool:
        return 1 if v else 0
    if v is None:
        return 0
    if t is str:
        n = parse_number(v)  # type: ignore[arg-type]
        if n is not None:
            return n
        raise Signal(VALUE)
    if t is ErrorValue:
        raise Signal(v)  # type: ignore[arg-type]
    raise Signal(VALUE)


def number_text(n: Number) -> str:
    """How a number prints in text: at most 15 significant digits, as in a spreadsheet
    (``0.1+0.2`` shows ``0.3``, ``123456789012345678`` shows ``1.23456789012346E+17``);
    scientific notation from 1E+15 up and below 1E-5 (Python's ``.15g`` rule)."""
    if type(n) is int and -_PLAIN_DIGITS < n < _PLAIN_DIGITS:
        return str(n)
    if n == 0:
        return "0"
    if type(n) is float and n.is_integer() and abs(n) < 1e15:
        return str(int(n))
    return format(n, ".15g").replace("e+", "E+").replace("e-", "E-")


_PLAIN_DIGITS: Final = 10**15


def to_text(v: object) -> str:
    """``v`` as text for ``&`` and text functions, or raise the error value."""
    t = type(v)
    if t is str:
        return v  # type: ignore[return-value]
    if t is int or t is float:
        return number_text(v)  # type: ignore[arg-type]
    if t is bool:
        return "TRUE" if v else "FALSE"
    if v is None:
        return ""
    if t is ErrorValue:
        raise Signal(v)  # type: ignore[arg-type]
    raise Signal(VALUE)


def to_bool(v: object) -> bool:
    """``v`` as a condition: numbers are true unless 0, text must be TRUE or FALSE."""
    t = type(v)
    if t is bool:
        return v  # type: ignore[return-value]
    if t is int or t is float:
        return v != 0
    if v is None:
        return False
    if t is str:
        u = v.strip().upper()  # type: ignore[attr-defined]
        if u == "TRUE":
            return True
        if u == "FALSE":
            return False
        raise Signal(VALUE)
    if t is ErrorValue:
        raise Signal(v)  # type: ignore[arg-type]
    raise Signal(VALUE)


def to_int(v: object, lo: int, hi: int) -> int:
    """``v`` as an integer argument truncated toward zero, or ``#VALUE!`` outside [lo, hi].

    Used for counts and positions, so that ``LEFT(x, 1e300)`` never builds a huge index.
    """
    n = to_number(v)
    if not lo <= n <= hi:
        raise Signal(VALUE)
    return int(n)


def _rank(v: object) -> int:
    t = type(v)
    if t is int or t is float:
        return 0
    if t is str:
        return 1
    if t is bool:
        return 2
    if t is ErrorValue:
        raise Signal(v)  # type: ignore[arg-type]
    raise Signal(VALUE)


def _blank_like(other: object) -> object:
    t = type(other)
    if t is str:
        return ""
    if t is bool:
        return False
    return 0


def numbers_compare(a: Number, b: Number) -> int:
    """-1, 0 or 1, treating numbers equal at 15 significant digits as equal, as every
    mainstream spreadsheet does (``0.1 + 0.2 = 0.3`` is TRUE)."""
    if a == b:
        return 0
    if type(a) is int and type(b) is int:
        return -1 if a < b else 1
    # Cheap reject first: only numbers within a relative 1e-14 can round together.
    if abs(a - b) <= 1e-14 * max(abs(a), abs(b)) and round15(a) == round15(b):
        return 0
    return -1 if a < b else 1


def round15(x: Number) -> float:
    """``x`` rounded to 15 significant digits (how spreadsheets compare and print)."""
    return float(format(x, ".15g"))


def compare(a: object, b: object) -> int:
    """-1, 0 or 1 in spreadsheet order: numbers < text < booleans, text case-insensitive,
    numbers equal at 15 significant digits."""
    if a is None:
        if b is None:
            return 0
        a = _blank_like(b)
    elif b is None:
        b = _blank_like(a)
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 0:
        return numbers_compare(a, b)  # type: ignore[arg-type]
    if ra == 1:
        a = a.casefold()  # type: ignore[attr-defined]
        b = b.casefold()  # type: ignore[attr-defined]
    if a < b:  # type: ignore[operator]
        return -1
    return 1 if a > b else 0  # type: ignore[operator]


def check_number(r: Number, max_number: float) -> Number:
    """``r`` if within ±max_number; NaN and overflow beyond a double are ``#NUM!`` (as in
    a spreadsheet); a finite value beyond a lower configured bound is ``#LIMIT!``."""
    if -max_number <= r <= max_number:
        return r
    if r != r or not -FLOAT_MAX <= r <= FLOAT_MAX:  # NaN fails every comparison
        raise Signal(NUM)
    raise Signal(LIMIT)


def too_big(max_number: float) -> ErrorValue:
    """The error for a number refused as too large: ``#NUM!`` when the bound is the
    largest double (the value does not exist), else ``#LIMIT!`` (a configured bound)."""
    return NUM if max_number >= FLOAT_MAX else LIMIT


def check_text(s: str, max_text: int) -> str:
    """``s`` if within the text length bound, else ``#LIMIT!``."""
    if len(s) > max_text:
        raise Signal(LIMIT)
    return s


_EXACT: Final = 2**53


def output(v: object, max_number: float) -> CellValue:
    """The value a cell stores: integral floats become ints (``6/3`` is ``2``, -0.0 is 0)
    and integers beyond 2**53 become floats. Numbers passed straight through from a cell
    (``{x}``) are held to the same bounds as computed ones, so NaN or 1e308 never leave."""
    if type(v) is float:
        if not -max_number <= v <= max_number:
            return NUM if v != v or not -FLOAT_MAX <= v <= FLOAT_MAX else LIMIT
        if v.is_integer() and -_EXACT <= v <= _EXACT:
            return int(v)
    elif type(v) is int and not -_EXACT <= v <= _EXACT:
        if not -max_number <= v <= max_number:
            return NUM if not -FLOAT_MAX <= v <= FLOAT_MAX else LIMIT
        # Exact big integers (from ^ or *) leave as floats: the wire carries 64-bit ints.
        return float(v)
    return v  # type: ignore[return-value]
