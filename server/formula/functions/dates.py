"""Date built-ins over ISO-8601 text.

Dates are text: ``"2024-03-31"`` for a day, ``"2024-03-31T09:30:00"`` (optionally with an
offset) for a moment, as cells store them. Functions read either form and write a date
(``DATE``, ``EDATE``, ``EOMONTH``, ``TODAY``) or a moment (``NOW``). Spreadsheet serial numbers
do not exist here, so ``"2024-01-01" + 1`` is ``#VALUE!``; use ``EDATE`` or ``DAYS``.
``TODAY`` and ``NOW`` read the time the caller put in the evaluation context.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta

from server.formula.context import EvalContext
from server.formula.errors import Signal
from server.formula.functions.spec import Builtin, builtin
from server.formula.values import NUM, VALUE, to_int, to_text

_MAX_DATE_TEXT = 64


def parse_moment(v: object) -> datetime:
    """ISO date or date-time text as a datetime (midnight for a date), else ``#VALUE!``."""
    if type(v) is not str:
        raise Signal(VALUE)
    s = v.strip()
    if not s or len(s) > _MAX_DATE_TEXT:
        raise Signal(VALUE)
    try:
        if len(s) == 10:
            d = date.fromisoformat(s)
            return datetime(d.year, d.month, d.day)
        return datetime.fromisoformat(s)
    except ValueError:
        raise Signal(VALUE) from None


def _iso_date(d: date) -> str:
    return d.isoformat()


def _date(ctx: EvalContext, year: object, month: object, day: object) -> str:
    y = to_int(year, 1, 9999)
    m = to_int(month, -120_000, 120_000)
    d = to_int(day, -4_000_000, 4_000_000)
    # Spreadsheet DATE rolls over: month 13 is next January, day 0 the previous month's end.
    y += (m - 1) // 12
    m = (m - 1) % 12 + 1
    if not 1 <= y <= 9999:
        raise Signal(NUM)
    try:
        return _iso_date(date(y, m, 1) + timedelta(days=d - 1))
    except OverflowError:
        raise Signal(NUM) from None


def _year(ctx: EvalContext, v: object) -> int:
    return parse_moment(v).year


def _month(ctx: EvalContext, v: object) -> int:
    return parse_moment(v).month


def _day(ctx: EvalContext, v: object) -> int:
    return parse_moment(v).day


def _hour(ctx: EvalContext, v: object) -> int:
    return parse_moment(v).hour


def _minute(ctx: EvalContext, v: object) -> int:
    return parse_moment(v).minute


def _second(ctx: EvalContext, v: object) -> int:
    return parse_moment(v).second


def _days(ctx: EvalContext, end: object, start: object) -> int:
    return (parse_moment(end).date() - parse_moment(start).date()).days


def _whole_months(start: date, end: date) -> int:
    months = (end.year - start.year) * 12 + end.month - start.month
    return months - 1 if end.day < start.day else months


def _datedif(ctx: EvalContext, start: object, end: object, unit: object) -> int:
    a, b = parse_moment(start).date(), parse_moment(end).date()
    if a > b:
        raise Signal(NUM)
    u = to_text(unit).upper()
    if u == "D":
        return (b - a).days
    if u == "M":
        return _whole_months(a, b)
    if u == "Y":
        return _whole_months(a, b) // 12
    raise Signal(VALUE)


def _add_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    y, m = divmod(index, 12)
    if not 1 <= y <= 9999:
        raise Signal(NUM)
    return date(y, m + 1, min(d.day, calendar.monthrange(y, m + 1)[1]))


def _edate(ctx: EvalContext, start: object, months: object) -> str:
    return _iso_date(_add_months(parse_moment(start).date(), to_int(months, -120_000, 120_000)))


def _eomonth(ctx: EvalContext, start: object, months: object) -> str:
    d = _add_months(parse_moment(start).date().replace(day=1), to_int(months, -120_000, 120_000))
    return _iso_date(d.replace(day=calendar.monthrange(d.year, d.month)[1]))


def _weekday(ctx: EvalContext, v: object, kind: object = 1) -> int:
    monday0 = parse_moment(v).weekday()  # Monday = 0
    k = to_int(kind, 1, 3)
    if k == 1:
        return (monday0 + 1) % 7 + 1  # Sunday = 1 ... Saturday = 7
    if k == 2:
        return monday0 + 1  # Monday = 1 ... Sunday = 7
    return monday0  # Monday = 0 ... Sunday = 6


def _now_from(ctx: EvalContext) -> datetime:
    if ctx.now is None:
        raise Signal(VALUE)  # the caller gave no time: there is no clock to read here
    return ctx.now


def _today(ctx: EvalContext) -> str:
    return _iso_date(_now_from(ctx).date())


def _now(ctx: EvalContext) -> str:
    return _now_from(ctx).isoformat(timespec="seconds")


FUNCTIONS: tuple[Builtin, ...] = (
    builtin("DATE", _date, 3, 3, "The date of a year, month and day (rolling over like Excel)."),
    builtin("YEAR", _year, 1, 1, "Year of a date."),
    builtin("MONTH", _month, 1, 1, "Month (1-12) of a date."),
    builtin("DAY", _day, 1, 1, "Day of the month of a date."),
    builtin("HOUR", _hour, 1, 1, "Hour (0-23) of a date-time."),
    builtin("MINUTE", _minute, 1, 1, "Minute of a date-time."),
    builtin("SECOND", _second, 1, 1, "Second of a date-time."),
    builtin("DAYS", _days, 2, 2, "Days from the second date to the first (end, start)."),
    builtin("DATEDIF", _datedif, 3, 3, 'Whole "D"ays, "M"onths or "Y"ears from start to end.'),
    builtin("EDATE", _edate, 2, 2, "The date N months later (day clamped to the month's end)."),
    builtin("EOMONTH", _eomonth, 2, 2, "The last day of the month N months later."),
    builtin("WEEKDAY", _weekday, 1, 2, "Day of the week: type 1 Sun=1, 2 Mon=1, 3 Mon=0."),
    builtin("TODAY", _today, 0, 0, "Today's date, from the evaluation context.", volatile=True),
    builtin(
        "NOW", _now, 0, 0, "The current date-time, from the evaluation context.", volatile=True
    ),
)
