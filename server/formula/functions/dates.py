"""Date built-ins over ISO-8601 text, and date arithmetic.

Dates are text: ``"2024-03-31"`` for a day, ``"2024-03-31T09:30:00"`` (optionally with an
offset) for a moment, as cells store them. Functions read either form, or a spreadsheet
serial number (``45382`` is 2024-03-31: days since 1899-12-30, the 1900 date system; the
fraction is the time of day), and write a date (``DATE``, ``EDATE``, ``EOMONTH``,
``WORKDAY``, ``TODAY``) or a moment (``NOW``) as ISO text. ``DATEVALUE`` gives the serial
number of a date.

Arithmetic (the rule of ``+`` and ``-``): a text operand that is not a number but an ISO date
or date-time is a *moment*. ``moment + n``, ``n + moment`` and ``moment - n`` move it by
``n`` days (fractions are hours...) and give ISO text again (a date when the input was a
date and ``n`` whole days); ``moment - moment`` gives the days between them (a whole
number for two dates). Anything else with a moment (``*``, ``moment + moment``) is
``#VALUE!``. ``TODAY`` and ``NOW`` read the time the caller put in the evaluation context.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from typing import Final

from server.formula.context import ColumnView, EvalContext
from server.formula.errors import Signal
from server.formula.functions.spec import Builtin, builtin
from server.formula.values import NUM, VALUE, Number, parse_number, to_int, to_number, to_text

_MAX_DATE_TEXT: Final = 64
_EPOCH: Final = datetime(1899, 12, 30)  # serial 0 for serials >= 61 (after Excel's 1900-02-29)
_FIRST_DATE: Final = date(1900, 1, 1)  # DATE gives nothing earlier, as in Excel
_MAX_SERIAL: Final = 2958465  # 9999-12-31


class Moment:
    """A date or date-time read from ISO text, in arithmetic: ``at`` and whether the text
    had a time part (so the result is written back in the same form)."""

    __slots__ = ("at", "timed")

    def __init__(self, at: datetime, timed: bool) -> None:
        self.at = at
        self.timed = timed


def _parse_iso(s: str) -> Moment | None:
    s = s.strip()
    if not s or len(s) > _MAX_DATE_TEXT or not s[:4].isdigit() or s[4:5] != "-":
        return None
    try:
        if len(s) == 10:
            d = date.fromisoformat(s)
            return Moment(datetime(d.year, d.month, d.day), False)
        return Moment(datetime.fromisoformat(s), True)
    except ValueError:
        return None


def from_serial(n: Number) -> datetime:
    """The moment of a spreadsheet serial number (1900 system), else ``#NUM!``."""
    if not 0 <= n < _MAX_SERIAL + 1 or 60 <= n < 61:  # 60 is Excel's nonexistent 1900-02-29
        raise Signal(NUM)  # (0 to 1 is a time of day, on Excel's "1900-01-00")
    days = int(n)
    base = _EPOCH if days >= 61 else _EPOCH + timedelta(days=1)
    seconds = round((n - days) * 86400)
    return base + timedelta(days=days, seconds=seconds)


def to_serial(moment: datetime) -> Number:
    """The serial number of a moment (whole for midnight), else ``#NUM!`` before 1900-03-01
    where Excel's calendar is off by its fictitious 1900-02-29."""
    naive = moment.replace(tzinfo=None)
    delta = naive - _EPOCH
    days = delta.days
    if days < 61:
        if days < 1:
            raise Signal(NUM)
        days -= 1  # 1900-01-01 is serial 1
    if delta.seconds == 0 and delta.microseconds == 0:
        return days
    return days + (delta.seconds + delta.microseconds / 1e6) / 86400


def parse_moment(v: object) -> datetime:
    """ISO date or date-time text, or a serial number, as a datetime, else ``#VALUE!``."""
    t = type(v)
    if t is int or t is float:
        return from_serial(v)  # type: ignore[arg-type]
    if t is not str:
        if v is None or t is bool:
            raise Signal(VALUE)
        to_number(v)  # an error value propagates
        raise Signal(VALUE)
    m = _parse_iso(v)  # type: ignore[arg-type]
    if m is None:
        raise Signal(VALUE)
    return m.at


def number_or_moment(v: object) -> Number | Moment:
    """An operand of ``+``/``-``: its number, or the moment an ISO date text spells."""
    if type(v) is str:
        n = parse_number(v)
        if n is not None:
            return n
        m = _parse_iso(v)
        if m is not None:
            return m
        raise Signal(VALUE)
    return to_number(v)


def moment_arithmetic(op: str, a: Number | Moment, b: Number | Moment) -> Number | str:
    """``a op b`` where at least one side is a moment (see the module docstring)."""
    if type(a) is Moment and type(b) is Moment:
        if op != "-":
            raise Signal(VALUE)
        delta = a.at - b.at
        if not a.timed and not b.timed:
            return delta.days
        return delta.total_seconds() / 86400
    if type(a) is Moment:
        days = b if op == "+" else -b  # type: ignore[operator]
        return _shift(a, days)  # type: ignore[arg-type]
    if op == "-":
        raise Signal(VALUE)  # a number minus a date means nothing
    return _shift(b, a)  # type: ignore[arg-type]


def _shift(m: Moment, days: Number) -> str:
    if not -_MAX_SERIAL <= days <= _MAX_SERIAL:
        raise Signal(NUM)
    try:
        at = m.at + timedelta(days=days)
    except OverflowError:
        raise Signal(NUM) from None
    if not m.timed and float(days).is_integer():
        return at.date().isoformat()
    return at.isoformat(timespec="seconds")


def _iso_date(d: date) -> str:
    return d.isoformat()


def _rolled(y: int, m: int, d: int) -> date:
    """Excel's DATE arithmetic: month 13 is next January, day 0 the previous month's end."""
    y += (m - 1) // 12
    m = (m - 1) % 12 + 1
    if not 1 <= y <= 9999:
        raise Signal(NUM)
    try:
        return date(y, m, 1) + timedelta(days=d - 1)
    except OverflowError:
        raise Signal(NUM) from None


def _date(ctx: EvalContext, year: object, month: object, day: object) -> str:
    y = to_int(year, -(2**31), 2**31)
    if not 0 <= y <= 9999:
        raise Signal(NUM)
    if y < 1900:
        y += 1900  # Excel's rule: DATE(99, 1, 1) is 1999-01-01, DATE(1899, 1, 1) 3799-01-01
    m = to_int(month, -(2**31), 2**31)
    d = to_int(day, -(2**31), 2**31)
    if not -120_000 <= m <= 120_000 or not -4_000_000 <= d <= 4_000_000:
        raise Signal(NUM)
    result = _rolled(y, m, d)
    if result < _FIRST_DATE:
        raise Signal(NUM)
    return _iso_date(result)


def _datevalue(ctx: EvalContext, v: object) -> Number:
    return to_serial(parse_moment(to_text(v)).replace(hour=0, minute=0, second=0, microsecond=0))


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
    if u == "YM":
        return _whole_months(a, b) % 12
    if u == "MD":
        # Excel's rule, negative results included: days since the start's day of the month
        # in the end's previous month, rolled over like DATE.
        if b.day >= a.day:
            return b.day - a.day
        return (b - _rolled(b.year, b.month - 1, a.day)).days
    if u == "YD":
        anchor = _rolled(b.year, a.month, a.day)
        if anchor > b:
            anchor = _rolled(b.year - 1, a.month, a.day)
        return (b - anchor).days
    raise Signal(NUM)


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


# WEEKDAY return types: the weekday (Monday = 0) that counts as 1, and whether it counts
# from 0 (type 3).
_WEEKDAY_TYPES: Final[dict[int, tuple[int, int]]] = {
    1: (6, 1),
    2: (0, 1),
    3: (0, 0),
    11: (0, 1),
    12: (1, 1),
    13: (2, 1),
    14: (3, 1),
    15: (4, 1),
    16: (5, 1),
    17: (6, 1),
}


def _weekday(ctx: EvalContext, v: object, kind: object = 1) -> int:
    monday0 = parse_moment(v).weekday()  # Monday = 0
    found = _WEEKDAY_TYPES.get(to_int(kind, -(2**31), 2**31))
    if found is None:
        raise Signal(NUM)
    first, base = found
    return (monday0 - first) % 7 + base


def _isoweeknum(ctx: EvalContext, v: object) -> int:
    return parse_moment(v).isocalendar()[1]


def _weeknum(ctx: EvalContext, v: object, kind: object = 1) -> int:
    d = parse_moment(v).date()
    k = to_int(kind, -(2**31), 2**31)
    if k == 21:
        return d.isocalendar()[1]
    first = {1: 6, 2: 0, 11: 0, 12: 1, 13: 2, 14: 3, 15: 4, 16: 5, 17: 6}.get(k)
    if first is None:
        raise Signal(NUM)
    jan1 = date(d.year, 1, 1)
    # Week 1 holds January 1st; a week starts on ``first`` (Monday = 0).
    offset = (jan1.weekday() - first) % 7
    return ((d - jan1).days + offset) // 7 + 1


def _holidays(ctx: EvalContext, holidays: object) -> set[date]:
    """The dates of a holidays argument: a whole column, a date, or blank for none."""
    if holidays is None:
        return set()
    if type(holidays) is ColumnView:
        key = ("holidays", id(holidays))
        found = ctx.memo.get(key)
        if found is None:
            ctx.charge_scan(len(holidays.values))
            found = set()
            for v in holidays.values:
                if v is not None and v != "":
                    found.add(parse_moment(v).date())
            ctx.memo[key] = (holidays, found)  # the view is kept so its id stays unique
            return found
        return found[1]  # type: ignore[no-any-return]
    return {parse_moment(holidays).date()}


def _weekdays_before(d: date) -> int:
    """Monday-to-Friday days from a fixed Monday up to, not including, ``d``."""
    days = (d - date(1, 1, 1)).days  # 0001-01-01 is a Monday
    weeks, rest = divmod(days, 7)
    return weeks * 5 + min(rest, 5)


def _networkdays(ctx: EvalContext, start: object, end: object, holidays: object = None) -> int:
    a, b = parse_moment(start).date(), parse_moment(end).date()
    sign = 1
    if a > b:
        a, b, sign = b, a, -1
    count = _weekdays_before(b) + (b.weekday() < 5) - _weekdays_before(a)
    count -= sum(1 for h in _holidays(ctx, holidays) if a <= h <= b and h.weekday() < 5)
    return sign * count


def _workday(ctx: EvalContext, start: object, days: object, holidays: object = None) -> str:
    d = parse_moment(start).date()
    n = to_int(days, -_MAX_SERIAL, _MAX_SERIAL)
    off = _holidays(ctx, holidays)
    step = 1 if n >= 0 else -1
    # Whole weeks first (5 working days each), then the rest one day at a time, skipping
    # weekends and holidays; holidays already passed in the whole weeks add days back.
    weeks, rest = divmod(abs(n), 5)
    while d.weekday() >= 5 and n != 0:  # from a weekend, count as from the nearest workday
        d -= timedelta(days=step)
    try:
        target = d + timedelta(days=7 * weeks * step)
        skipped = sum(
            1 for h in off if h.weekday() < 5 and (d < h <= target if step > 0 else target <= h < d)
        )
        rest += skipped
        while rest > 0:
            target += timedelta(days=step)
            if target.weekday() < 5 and target not in off:
                rest -= 1
    except OverflowError:
        raise Signal(NUM) from None
    if target < _FIRST_DATE:
        raise Signal(NUM)
    return _iso_date(target)


def _now_from(ctx: EvalContext) -> datetime:
    if ctx.now is None:
        raise Signal(VALUE)  # the caller gave no time: there is no clock to read here
    return ctx.now


def _today(ctx: EvalContext) -> str:
    return _iso_date(_now_from(ctx).date())


def _now(ctx: EvalContext) -> str:
    return _now_from(ctx).isoformat(timespec="seconds")


FUNCTIONS: tuple[Builtin, ...] = (
    builtin(
        "DATE",
        _date,
        3,
        3,
        "The date of a year, month and day (rolling over like Excel; years 0-1899 add 1900).",
    ),
    builtin("YEAR", _year, 1, 1, "Year of a date."),
    builtin("MONTH", _month, 1, 1, "Month (1-12) of a date."),
    builtin("DAY", _day, 1, 1, "Day of the month of a date."),
    builtin("HOUR", _hour, 1, 1, "Hour (0-23) of a date-time."),
    builtin("MINUTE", _minute, 1, 1, "Minute of a date-time."),
    builtin("SECOND", _second, 1, 1, "Second of a date-time."),
    builtin("DAYS", _days, 2, 2, "Days from the second date to the first (end, start)."),
    builtin(
        "DATEDIF",
        _datedif,
        3,
        3,
        'Whole "Y"ears, "M"onths or "D"ays from start to end; "YM", "MD", "YD" ignore the '
        "larger units.",
    ),
    builtin("EDATE", _edate, 2, 2, "The date N months later (day clamped to the month's end)."),
    builtin("EOMONTH", _eomonth, 2, 2, "The last day of the month N months later."),
    builtin(
        "WEEKDAY",
        _weekday,
        1,
        2,
        "Day of the week: type 1 Sun=1, 2 Mon=1, 3 Mon=0, 11-17 Mon..Sun=1; #NUM! otherwise.",
    ),
    builtin("WEEKNUM", _weeknum, 1, 2, "Week of the year (week 1 holds January 1st; type 21 ISO)."),
    builtin("ISOWEEKNUM", _isoweeknum, 1, 1, "ISO 8601 week of the year."),
    builtin("DATEVALUE", _datevalue, 1, 1, "The serial number of a date (1900 system)."),
    builtin(
        "NETWORKDAYS",
        _networkdays,
        2,
        3,
        "Working days (Mon-Fri) from start to end, both included, minus holidays.",
        range_params=(2,),
    ),
    builtin(
        "WORKDAY",
        _workday,
        2,
        3,
        "The date N working days (Mon-Fri, not holidays) after a date.",
        range_params=(2,),
    ),
    builtin("TODAY", _today, 0, 0, "Today's date, from the evaluation context.", volatile=True),
    builtin(
        "NOW", _now, 0, 0, "The current date-time, from the evaluation context.", volatile=True
    ),
)
