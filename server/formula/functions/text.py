"""Text built-ins. Every function that can build long text checks the final length
against ``Limits.max_text_length`` *before* building it (``REPT``, ``SUBSTITUTE``,
``CONCAT``, ``TEXTJOIN``), so a hostile count costs arithmetic, not memory."""

from __future__ import annotations

from server.formula.context import EvalContext
from server.formula.errors import Signal
from server.formula.functions.dates import parse_moment
from server.formula.functions.spec import Builtin, builtin
from server.formula.functions.textformat import format_date, format_number, is_date_format
from server.formula.functions.wildcard import compile_pattern, fold, has_wildcards
from server.formula.values import (
    LIMIT,
    VALUE,
    Number,
    check_text,
    parse_number,
    to_bool,
    to_int,
    to_number,
    to_text,
)

_BIG = 2**31  # positions beyond any text we allow
_HUGE = 10**308  # counts: anything larger than the text just means "all of it"


def _join(ctx: EvalContext, parts: list[str], separator: str = "") -> str:
    total = sum(len(p) for p in parts) + len(separator) * max(len(parts) - 1, 0)
    if total > ctx.limits.max_text_length:
        raise Signal(LIMIT)
    return separator.join(parts)


def _concat(ctx: EvalContext, *args: object) -> str:
    return _join(ctx, [to_text(a) for a in args])


def _textjoin(ctx: EvalContext, separator: object, ignore_empty: object, *args: object) -> str:
    skip = to_bool(ignore_empty)
    parts = [to_text(a) for a in args]
    return _join(ctx, [p for p in parts if p or not skip], to_text(separator))


def _len(ctx: EvalContext, s: object) -> int:
    return len(to_text(s))


def _left(ctx: EvalContext, s: object, n: object = 1) -> str:
    return to_text(s)[: to_int(n, 0, _HUGE)]


def _right(ctx: EvalContext, s: object, n: object = 1) -> str:
    text = to_text(s)
    count = min(to_int(n, 0, _HUGE), len(text))
    return text[len(text) - count :] if count else ""


def _mid(ctx: EvalContext, s: object, start: object, n: object) -> str:
    first = to_int(start, 1, _BIG) - 1
    return to_text(s)[first : first + min(to_int(n, 0, _HUGE), _BIG)]


def _upper(ctx: EvalContext, s: object) -> str:
    return check_text(to_text(s).upper(), ctx.limits.max_text_length)  # "ß" becomes "SS"


def _lower(ctx: EvalContext, s: object) -> str:
    return check_text(to_text(s).lower(), ctx.limits.max_text_length)


def _proper(ctx: EvalContext, s: object) -> str:
    return check_text(to_text(s).title(), ctx.limits.max_text_length)


def _trim(ctx: EvalContext, s: object) -> str:
    return " ".join(part for part in to_text(s).split(" ") if part)


def _substitute(
    ctx: EvalContext, s: object, old: object, new: object, instance: object = None
) -> str:
    text, before, after = to_text(s), to_text(old), to_text(new)
    if not before:
        return text
    if instance is not None:
        k = to_int(instance, 1, _BIG)
        at = -1
        for _ in range(min(k, len(text) + 1)):
            at = text.find(before, at + 1)
            if at < 0:
                return text
        return check_text(text[:at] + after + text[at + len(before) :], ctx.limits.max_text_length)
    size = len(text) + text.count(before) * (len(after) - len(before))
    if size > ctx.limits.max_text_length:
        raise Signal(LIMIT)
    return text.replace(before, after)


def _rept(ctx: EvalContext, s: object, times: object) -> str:
    text = to_text(s)
    n = to_number(times)
    if n < 0:
        raise Signal(VALUE)
    if len(text) * n > ctx.limits.max_text_length:  # checked before building
        raise Signal(LIMIT)
    return text * int(n)


def _find_in(needle: str, haystack: str, start: object) -> int:
    first = to_int(start, 1, _BIG) - 1
    if first > len(haystack):
        raise Signal(VALUE)
    at = haystack.find(needle, first)
    if at < 0:
        raise Signal(VALUE)
    return at + 1


def _find(ctx: EvalContext, needle: object, haystack: object, start: object = 1) -> int:
    return _find_in(to_text(needle), to_text(haystack), start)


def _search(ctx: EvalContext, needle: object, haystack: object, start: object = 1) -> int:
    pattern, text = fold(to_text(needle)), fold(to_text(haystack))
    if not has_wildcards(pattern):
        return _find_in(pattern, text, start)
    first = to_int(start, 1, _BIG) - 1
    if first > len(text):
        raise Signal(VALUE)
    compiled = compile_pattern(pattern)
    # Charged before matching: a long pattern against a long text costs its word operations.
    ctx.charge_steps(compiled.cost(len(text) - first) // 64)
    at = compiled.search(text, first)
    if at < 0:
        raise Signal(VALUE)
    return at + 1


def _replace(ctx: EvalContext, old: object, start: object, count: object, new: object) -> str:
    text = to_text(old)
    first = to_int(start, 1, _BIG) - 1
    n = to_int(count, 0, _HUGE)
    head, tail = text[:first], text[first + min(n, _BIG) :]
    insert = to_text(new)
    if len(head) + len(insert) + len(tail) > ctx.limits.max_text_length:
        raise Signal(LIMIT)
    return head + insert + tail


def _t(ctx: EvalContext, v: object) -> str:
    return v if type(v) is str else ""


def _n(ctx: EvalContext, v: object) -> Number:
    t = type(v)
    if t is int or t is float:
        return v  # type: ignore[return-value]
    if t is bool:
        return 1 if v else 0
    return 0


def _char(ctx: EvalContext, code: object) -> str:
    n = to_int(code, 1, 255)
    return bytes([n]).decode("cp1252", errors="replace")


def _code(ctx: EvalContext, s: object) -> int:
    text = to_text(s)
    if not text:
        raise Signal(VALUE)
    try:
        encoded = text[0].encode("cp1252")
    except UnicodeEncodeError:
        return 63  # "?", as Windows spreadsheets give for characters outside their code page
    return encoded[0]


def _unichar(ctx: EvalContext, code: object) -> str:
    n = to_int(code, 1, 0x10FFFF)
    if 0xD800 <= n <= 0xDFFF:
        raise Signal(VALUE)
    return chr(n)


def _unicode(ctx: EvalContext, s: object) -> int:
    text = to_text(s)
    if not text:
        raise Signal(VALUE)
    return ord(text[0])


def _clean(ctx: EvalContext, s: object) -> str:
    return "".join(c for c in to_text(s) if ord(c) >= 32)


def _text(ctx: EvalContext, value: object, fmt: object) -> str:
    pattern = to_text(fmt)
    if is_date_format(pattern):
        return check_text(format_date(parse_moment(value), pattern), ctx.limits.max_text_length)
    return check_text(format_number(value, pattern), ctx.limits.max_text_length)


def _value(ctx: EvalContext, s: object) -> Number:
    if type(s) is int or type(s) is float:
        return s
    n = parse_number(to_text(s))
    if n is None:
        raise Signal(VALUE)
    return n


def _exact(ctx: EvalContext, a: object, b: object) -> bool:
    return to_text(a) == to_text(b)


FUNCTIONS: tuple[Builtin, ...] = (
    builtin("CONCAT", _concat, 1, None, "Join texts end to end."),
    builtin("CONCATENATE", _concat, 1, None, "Same as CONCAT."),
    builtin(
        "TEXTJOIN",
        _textjoin,
        3,
        None,
        "Join texts with a separator, optionally skipping empty ones.",
    ),
    builtin("LEN", _len, 1, 1, "Number of characters."),
    builtin("LEFT", _left, 1, 2, "The first N characters (default 1)."),
    builtin("RIGHT", _right, 1, 2, "The last N characters (default 1)."),
    builtin("MID", _mid, 3, 3, "N characters starting at a 1-based position."),
    builtin("UPPER", _upper, 1, 1, "Upper case."),
    builtin("LOWER", _lower, 1, 1, "Lower case."),
    builtin("PROPER", _proper, 1, 1, "Capitalise each word."),
    builtin("TRIM", _trim, 1, 1, "Remove leading, trailing and repeated spaces."),
    builtin("SUBSTITUTE", _substitute, 3, 4, "Replace occurrences (or only the Nth) of a text."),
    builtin("REPT", _rept, 2, 2, "A text repeated N times."),
    builtin("FIND", _find, 2, 3, "1-based position of a text, case-sensitive; #VALUE! if absent."),
    builtin(
        "SEARCH",
        _search,
        2,
        3,
        "Like FIND but case-insensitive, with wildcards: ? one character, * any, ~ escapes.",
    ),
    builtin("REPLACE", _replace, 4, 4, "Replace N characters from a 1-based position by a text."),
    builtin("T", _t, 1, 1, "The value if it is text, else empty text."),
    builtin("N", _n, 1, 1, "The value if it is a number, TRUE as 1, anything else 0."),
    builtin("CHAR", _char, 1, 1, "The character of a code 1-255 (Windows-1252)."),
    builtin("CODE", _code, 1, 1, "The code (Windows-1252) of a text's first character."),
    builtin("UNICHAR", _unichar, 1, 1, "The character of a Unicode code point."),
    builtin("UNICODE", _unicode, 1, 1, "The Unicode code point of a text's first character."),
    builtin("CLEAN", _clean, 1, 1, "Remove non-printable characters (codes 0-31)."),
    builtin(
        "TEXT", _text, 2, 2, 'A number or date formatted: "0.00", "#,##0", "0%", "yyyy-mm-dd".'
    ),
    builtin("VALUE", _value, 1, 1, "The number a text spells; #VALUE! if none."),
    builtin("EXACT", _exact, 2, 2, "Whether two texts are identical (case-sensitive)."),
)
