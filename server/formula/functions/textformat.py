"""The format language of ``TEXT(value, format)``: a small, safe subset of Excel's.

How it works: the format text is read by our own scanner, never handed to Python's
``format``/``str.format`` (whose ``{0.__class__}`` fields would reach object attributes).
Python's formatting only ever sees a spec we assemble from integers.

* Numbers: ``0`` (digit), ``#`` (optional digit), ``,`` (thousands separator), ``.``,
  ``%`` (multiply by 100), with any literal prefix/suffix: ``"$#,##0.00"``, ``"0.0%"``;
  scientific ``"0.00E+00"`` (``E-`` shows the exponent's sign only when negative).
* Dates (the value is ISO date text): ``yyyy yy mmmm mmm mm m dddd ddd dd d hh h ss``
  (``mm``/``m`` right after ``h`` mean minutes), ``AM/PM``.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from server.formula.values import to_number

_PLACEHOLDER_RE: Final = re.compile(r"[0#][0#,]*(?:\.[0#]*)?|\.[0#]+")
_SCIENTIFIC_RE: Final = re.compile(r"[0#]+(?:\.([0#]*))?[eE]([+-])(0+)")
_DATE_TOKEN_RE: Final = re.compile(
    r"yyyy|yy|mmmm|mmm|mm|m|dddd|ddd|dd|d|hh|h|ss|s|am/pm|.", re.IGNORECASE | re.DOTALL
)
_DATE_LETTERS: Final = frozenset("yYdDhHsS")
_MAX_DECIMALS: Final = 30
_MONTHS: Final = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def is_date_format(fmt: str) -> bool:
    """Whether ``fmt`` formats a date rather than a number."""
    return any(c in _DATE_LETTERS for c in fmt) or (
        "m" in fmt.lower() and not _PLACEHOLDER_RE.search(fmt)
    )


def format_number(value: object, fmt: str) -> str:
    """``value`` as a number laid out by ``fmt``."""
    n = to_number(value)
    scientific = _SCIENTIFIC_RE.search(fmt)
    if scientific is not None:
        return _format_scientific(n, fmt, scientific)
    match = _PLACEHOLDER_RE.search(fmt)
    if match is None:
        return fmt.replace('"', "") if fmt else ""
    if "%" in fmt:
        n = n * 100
    pattern = match.group()
    integer_part, _, fraction_part = pattern.partition(".")
    zeros = fraction_part.count("0")
    decimals = min(len(fraction_part), _MAX_DECIMALS)
    grouping = "," in integer_part
    min_int_digits = integer_part.count("0")
    exact = Decimal(n) if type(n) is int else Decimal(repr(float(n)))
    rounded = exact.quantize(Decimal((0, (1,), -decimals)), rounding=ROUND_HALF_UP)
    spec = f"{',' if grouping else ''}.{decimals}f"  # assembled from our own values only
    body = format(abs(rounded), spec)
    if decimals > zeros:  # '#' decimals are optional: drop their trailing zeros
        whole, _, frac = body.partition(".")
        frac = frac[:zeros] + frac[zeros:].rstrip("0")
        body = whole + ("." + frac if frac else "")
    whole, dot, frac = body.partition(".")
    if whole == "0" and min_int_digits == 0:
        whole = ""
    digits_only = whole.replace(",", "")
    if len(digits_only) < min_int_digits:
        whole = "0" * (min_int_digits - len(digits_only)) + whole
    body = whole + dot + frac
    sign = "-" if rounded < 0 else ""
    prefix = fmt[: match.start()].replace('"', "")
    suffix = fmt[match.end() :].replace('"', "")
    return sign + prefix + body + suffix


def _format_scientific(n: float | int, fmt: str, match: re.Match[str]) -> str:
    """``n`` as a mantissa with one integer digit and a decimal exponent."""
    fraction, exponent_sign, exponent_zeros = match.groups()
    decimals = min(len(fraction or ""), _MAX_DECIMALS)
    step = Decimal((0, (1,), -decimals))
    exact = Decimal(n) if type(n) is int else Decimal(repr(float(n)))
    exponent = 0 if exact == 0 else exact.adjusted()
    mantissa = exact.scaleb(-exponent).quantize(step, rounding=ROUND_HALF_UP)
    if abs(mantissa) >= 10:  # 9.996 -> 10.00: one more power of ten
        exponent += 1
        mantissa = exact.scaleb(-exponent).quantize(step, rounding=ROUND_HALF_UP)
    sign = "-" if mantissa < 0 else ""
    shown = "-" if exponent < 0 else ("+" if exponent_sign == "+" else "")
    digits = str(abs(exponent)).rjust(len(exponent_zeros), "0")
    prefix = fmt[: match.start()].replace('"', "")
    suffix = fmt[match.end() :].replace('"', "")
    body = format(abs(mantissa), f".{decimals}f")
    return f"{sign}{prefix}{body}E{shown}{digits}{suffix}"


def format_date(moment: datetime, fmt: str) -> str:
    """``moment`` laid out by the date tokens of ``fmt``."""
    out: list[str] = []
    after_hour = False
    twelve_hour = "am/pm" in fmt.lower()
    for tok in _DATE_TOKEN_RE.findall(fmt):
        low = tok.lower()
        if low == "yyyy":
            out.append(f"{moment.year:04d}")
        elif low == "yy":
            out.append(f"{moment.year % 100:02d}")
        elif low in ("mm", "m") and after_hour:
            out.append(f"{moment.minute:02d}" if low == "mm" else str(moment.minute))
        elif low == "mmmm":
            out.append(_MONTHS[moment.month - 1])
        elif low == "mmm":
            out.append(_MONTHS[moment.month - 1][:3])
        elif low == "mm":
            out.append(f"{moment.month:02d}")
        elif low == "m":
            out.append(str(moment.month))
        elif low == "dddd":
            out.append(_DAYS[moment.weekday()])
        elif low == "ddd":
            out.append(_DAYS[moment.weekday()][:3])
        elif low == "dd":
            out.append(f"{moment.day:02d}")
        elif low == "d":
            out.append(str(moment.day))
        elif low in ("hh", "h"):
            hour = (moment.hour % 12 or 12) if twelve_hour else moment.hour
            out.append(f"{hour:02d}" if low == "hh" else str(hour))
        elif low in ("ss", "s"):
            out.append(f"{moment.second:02d}" if low == "ss" else str(moment.second))
        elif low == "am/pm":
            out.append("AM" if moment.hour < 12 else "PM")
        elif tok != '"':
            out.append(tok)
        if low in ("hh", "h"):
            after_hour = True
        elif tok.isalpha():
            after_hour = False
    return "".join(out)
