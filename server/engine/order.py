"""Row order keys: strings that sort rows, with a key between any two keys.

How it works: a key is an 8-digit base-62 integer part, optionally followed by a fraction.
Appending takes the next integer and prepending the previous one, so the common cases keep
keys at 8 characters; inserting between two neighbours takes the integer midpoint when there
is room, else grows the fraction (the fractional-indexing midpoint), which only lengthens keys
where many rows are squeezed into one gap. Keys compare as plain strings (byte order), which
is how SQLite's default ``BINARY`` collation sorts them.
"""

from __future__ import annotations

DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX = {ch: i for i, ch in enumerate(DIGITS)}
_BASE = len(DIGITS)
_WIDTH = 8
_MAX = _BASE**_WIDTH - 1
FIRST_KEY_INT = _BASE**_WIDTH // 2


class OrderKeyError(ValueError):
    """The keys given are not valid or not in order (a caller bug)."""


def _encode(n: int) -> str:
    if not 0 <= n <= _MAX:
        raise OrderKeyError("order key space exhausted at an end of the table")
    out = []
    for _ in range(_WIDTH):
        n, r = divmod(n, _BASE)
        out.append(DIGITS[r])
    return "".join(reversed(out))


def _decode(s: str) -> int:
    n = 0
    for ch in s:
        n = n * _BASE + _INDEX[ch]
    return n


def _midpoint(a: str, b: str | None) -> str:
    """A fraction strictly between fractions ``a`` and ``b`` (``None`` = 1)."""
    if b is not None:
        n = 0
        while n < len(b) and (a[n] if n < len(a) else "0") == b[n]:
            n += 1
        if n > 0:
            return b[:n] + _midpoint(a[n:], b[n:])
    da = _INDEX[a[0]] if a else 0
    db = _INDEX[b[0]] if b else _BASE
    if db - da > 1:
        return DIGITS[(da + db) // 2]
    if b is not None and len(b) > 1:
        return b[0]
    return DIGITS[da] + _midpoint(a[1:], None)


def is_valid(key: str) -> bool:
    """Whether ``key`` is a well-formed order key."""
    return (
        len(key) >= _WIDTH
        and all(ch in _INDEX for ch in key)
        and not (len(key) > _WIDTH and key[-1] == "0")
    )


def key_between(before: str | None, after: str | None) -> str:
    """A key sorting strictly after ``before`` and before ``after`` (either may be None)."""
    if before is not None and after is not None and not before < after:
        raise OrderKeyError("order keys out of order")
    if before is None and after is None:
        return _encode(FIRST_KEY_INT)
    if after is None:
        assert before is not None
        return _encode(_decode(before[:_WIDTH]) + 1)
    if before is None:
        return _encode(_decode(after[:_WIDTH]) - 1)
    ia, ib = _decode(before[:_WIDTH]), _decode(after[:_WIDTH])
    if ib - ia > 1:
        return _encode((ia + ib) // 2)
    if ib - ia == 1:
        return before[:_WIDTH] + _midpoint(before[_WIDTH:], None)
    return before[:_WIDTH] + _midpoint(before[_WIDTH:], after[_WIDTH:])
