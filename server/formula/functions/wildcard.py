"""Spreadsheet wildcards (``?`` one character, ``*`` any run, ``~`` escapes the next) matched
in linear time, without regular expressions on user text.

How it works: a pattern is split at its ``*`` into *segments* of fixed length, each a tuple
of characters where ``None`` stands for ``?``. Placing every segment at its leftmost possible
position, in order, finds a match if there is one (a later segment only gets more room), so
the text is read once from left to right. Each segment is found with the bit-parallel
*Shift-And* algorithm: one integer of bits, one bit per segment position, updated with a
shift, an or and an and per character of text. Cost: ``len(text) * (1 + len(segment) // 60)``
machine-word operations in all, whatever the pattern; :func:`cost` tells callers that
figure in advance so they can charge it to their step budget before matching.

Matching is case-insensitive, as in spreadsheets (``SEARCH``, ``COUNTIF``, ``MATCH``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

Segment = tuple[str | None, ...]

_WILD: Final = frozenset("?*~")


def has_wildcards(text: str) -> bool:
    """Whether ``text`` uses ``?``, ``*`` or ``~`` (and so is a pattern, not a literal)."""
    return not _WILD.isdisjoint(text)


def fold(text: str) -> str:
    """Case-folded text of the same length (positions stay valid for ``SEARCH``)."""
    folded = text.casefold()
    if len(folded) == len(text):
        return folded
    return "".join(c if len(f := c.casefold()) != 1 else f for c in text)


@dataclass(frozen=True, slots=True)
class Pattern:
    """A parsed wildcard pattern: its segments, and whether it began/ended with ``*``."""

    segments: tuple[Segment, ...]
    open_start: bool
    open_end: bool
    width: int  # total characters of the segments

    def cost(self, text_length: int) -> int:
        """Word operations a match against a text of ``text_length`` may take."""
        return text_length * (1 + self.width // 60) + self.width

    def fullmatch(self, text: str) -> bool:
        """Whether the whole (already folded) ``text`` matches."""
        segs = self.segments
        if not segs:
            return self.open_start or text == ""
        if len(segs) == 1 and not self.open_start and not self.open_end:
            return len(text) == len(segs[0]) and _fits(segs[0], text, 0)
        first, last = 0, len(segs)
        pos, end = 0, len(text)
        if not self.open_start:
            if not _fits(segs[0], text, 0):
                return False
            pos, first = len(segs[0]), 1
        if not self.open_end:
            tail = segs[-1]
            end -= len(tail)
            if end < pos or not _fits(tail, text, end):
                return False
            last -= 1
        for seg in segs[first:last]:
            at = _find(seg, text, pos, end)
            if at < 0:
                return False
            pos = at + len(seg)
        return True

    def search(self, text: str, start: int) -> int:
        """0-based position of the first match in (folded) ``text`` from ``start``, or -1.

        As in ``SEARCH``, the pattern need not reach the end of the text; a leading ``*``
        matches from ``start``.
        """
        segs = self.segments
        if not segs:
            return start
        at = _find(segs[0], text, start, len(text))
        if at < 0:
            return -1
        pos = at + len(segs[0])
        for seg in segs[1:]:
            found = _find(seg, text, pos, len(text))
            if found < 0:
                return -1
            pos = found + len(seg)
        return start if self.open_start else at


_CACHED_PATTERN_LENGTH: Final = 256  # longer patterns are parsed each time, not kept


def compile_pattern(pattern: str) -> Pattern:
    """Parse (already folded) ``pattern``: ``?`` any character, ``*`` any run (also empty),
    ``~?`` ``~*`` ``~~`` the character itself; a ``~`` before anything else is literal.
    Short patterns (the usual ones) are parsed once per process."""
    if len(pattern) <= _CACHED_PATTERN_LENGTH:
        return _cached_pattern(pattern)
    return _parse_pattern(pattern)


@lru_cache(maxsize=1024)
def _cached_pattern(pattern: str) -> Pattern:
    return _parse_pattern(pattern)


def _parse_pattern(pattern: str) -> Pattern:
    segments: list[Segment] = []
    current: list[str | None] = []
    i, n = 0, len(pattern)
    open_end = False
    while i < n:
        c = pattern[i]
        open_end = c == "*"
        if c == "~" and i + 1 < n and pattern[i + 1] in _WILD:
            current.append(pattern[i + 1])
            i += 2
            continue
        if c == "*":
            if current:
                segments.append(tuple(current))
                current = []
        elif c == "?":
            current.append(None)
        else:
            current.append(c)
        i += 1
    if current:
        segments.append(tuple(current))
    open_start = pattern[:1] == "*"
    width = sum(len(s) for s in segments)
    return Pattern(tuple(segments), open_start, open_end, width)


def _fits(seg: Segment, text: str, at: int) -> bool:
    if at + len(seg) > len(text):
        return False
    return all(c is None or text[at + k] == c for k, c in enumerate(seg))


def _find(seg: Segment, text: str, start: int, end: int) -> int:
    """Leftmost position ``p`` in [start, end - len(seg)] where ``seg`` fits, or -1."""
    m = len(seg)
    if m == 0:
        return start if start <= end else -1
    if None not in seg:
        return text.find("".join(seg), start, end)  # type: ignore[arg-type]
    masks: dict[str, int] = {}
    any_mask = 0
    for k, c in enumerate(seg):
        if c is None:
            any_mask |= 1 << k
        else:
            masks[c] = masks.get(c, 0) | (1 << k)
    goal = 1 << (m - 1)
    state = 0
    for i in range(start, end):
        state = ((state << 1) | 1) & (masks.get(text[i], 0) | any_mask)
        if state & goal:
            return i - m + 1
    return -1
