"""Sliding-window log: the rate-limit arithmetic, pure (no clock, no I/O, no asyncio).

How it works
------------
A limit is "at most ``limit`` units in any window of ``window`` milliseconds". For each key we
keep an exact log of what was admitted: entries ``(ts_ms, cum_before)`` in time order, where
``cum_before`` is the running total of units admitted before that entry. The units held by an
entry are the difference to the next entry's ``cum_before`` (or to the running total ``cum``
for the newest entry), so a batch of ``cost`` ops is one entry, and admissions at the same
millisecond merge into one entry.

- The window ending at ``t`` is the half-open interval ``(t - window, t]``: an entry stamped
  ``ts`` stops counting at exactly ``ts + window``.
- ``used = cum - cum_before(oldest live entry)``; a request fits when ``used + cost <= limit``.
- A denied request changes nothing (it consumes nothing). Its ``retry_after_ms`` is exact: the
  smallest wait after which enough old entries have left the window for ``cost`` to fit,
  found by binary search over the monotone ``cum_before`` column. A cost larger than the limit
  can never fit and is reported as ``oversize``.
- Time is handled in integer milliseconds (``round(seconds * 1000)``) so that the window edge
  and ``retry_after_ms`` are exact integers, free of float rounding. A ``now`` older than the
  newest entry (a clock stepping back, or skew between hosts) is clamped to that entry, which
  keeps the log ordered; the limit can only get stricter by it, never looser.

The log is exact: no window of length ``window`` ever holds more than ``limit`` admitted units,
and traffic that keeps every such window at or under ``limit`` is never denied. Memory is one
entry per admission (merged per millisecond), so at most ``limit`` entries per key.

The Redis backend runs the same algorithm in one Lua script (``redis_backend.py``); the memory
backend wraps :class:`SlidingLog` directly (``memory.py``).
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Sequence
from dataclasses import dataclass


class RateLimitError(Exception):
    """Root of the rate-limit package's exceptions: always a local misuse (bad arguments)."""


def to_ms(seconds: float) -> int:
    """Seconds (a clock reading or a duration) as integer milliseconds, rounded to nearest."""
    return round(seconds * 1000)


@functools.lru_cache(maxsize=64)
def _window_ms(seconds: float) -> int:
    # Windows are a handful of configured lengths, read for every charge of every message.
    return to_ms(seconds)


@dataclass(frozen=True, slots=True)
class Charge:
    """One limit to charge: ``cost`` units against ``limit`` per ``window_s`` under ``key``."""

    key: str
    cost: int
    limit: int
    window_s: float

    def __post_init__(self) -> None:
        if not self.key:
            raise RateLimitError("charge key must not be empty")
        if self.cost < 1:
            raise RateLimitError(f"cost must be >= 1, got {self.cost}")
        if self.limit < 1:
            raise RateLimitError(f"limit must be >= 1, got {self.limit}")
        if to_ms(self.window_s) < 1:
            raise RateLimitError(f"window must be at least 1 ms, got {self.window_s} s")

    @property
    def window_ms(self) -> int:
        """The window length in integer milliseconds."""
        return _window_ms(self.window_s)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to an acquire.

    ``allowed``: every charge fitted and all were consumed; otherwise nothing was consumed.
    ``limit`` and ``remaining``: of the tightest charge (the denying one when denied);
    ``remaining`` counts units left after this decision.
    ``retry_after_ms``: 0 when allowed; when denied, the wait after which the same request
    fits if nothing else is admitted meanwhile.
    ``denied_key``: the key of the charge that denied (the one with the longest wait).
    ``oversize``: the cost exceeds the limit itself; no wait helps, the batch must be split.
    """

    allowed: bool
    limit: int
    remaining: int
    retry_after_ms: int = 0
    denied_key: str | None = None
    oversize: bool = False


class SlidingLog:
    """The exact admission log of one key (see the module docstring)."""

    __slots__ = ("_cb", "_cum", "_head", "_ts")

    # Dropping expired entries from the front of a list is O(n); instead advance a head index
    # and compact once the dead prefix is both large and the majority.
    _COMPACT_AT = 256

    def __init__(self) -> None:
        self._ts: list[int] = []
        self._cb: list[int] = []
        self._head = 0
        self._cum = 0

    def __len__(self) -> int:
        """Number of live entries (admissions, merged per millisecond)."""
        return len(self._ts) - self._head

    @property
    def newest_ms(self) -> int | None:
        """Timestamp of the newest live entry, or ``None`` when the log is empty."""
        ts = self._ts
        return ts[-1] if len(ts) > self._head else None

    def used(self) -> int:
        """Units held by live entries (call :meth:`expire` first for a current figure)."""
        if len(self._ts) <= self._head:
            return 0
        return self._cum - self._cb[self._head]

    def clamp(self, now_ms: int) -> int:
        """``now_ms``, but never older than the newest entry (keeps the log ordered)."""
        ts = self._ts
        if len(ts) <= self._head or now_ms >= ts[-1]:
            return now_ms
        return ts[-1]

    def expire(self, now_ms: int, window_ms: int) -> None:
        """Drop entries that left the window ``(now - window, now]``."""
        t = self.clamp(now_ms)
        edge = t - window_ms
        self._head = bisect.bisect_right(self._ts, edge, self._head)
        if self._head == len(self._ts):
            self._ts.clear()
            self._cb.clear()
            self._head = 0
        elif self._head >= self._COMPACT_AT and self._head * 2 >= len(self._ts):
            del self._ts[: self._head]
            del self._cb[: self._head]
            self._head = 0

    def check(self, now_ms: int, cost: int, limit: int, window_ms: int) -> Decision:
        """Whether ``cost`` fits now. Expires old entries; admits nothing."""
        self.expire(now_ms, window_ms)
        used = self.used()
        if cost > limit:
            return Decision(False, limit, max(limit - used, 0), window_ms, oversize=True)
        if used + cost <= limit:
            return Decision(True, limit, limit - used - cost)
        # Find the oldest prefix of entries whose departure frees enough room: the smallest
        # k with cum_before[k] >= base + need means entries head..k-1 must leave.
        base = self._cb[self._head]
        need = used + cost - limit
        k = bisect.bisect_left(self._cb, base + need, self._head + 1, len(self._cb))
        frees_at = self._ts[k - 1] + window_ms
        return Decision(False, limit, max(limit - used, 0), max(frees_at - now_ms, 1))

    def commit(self, now_ms: int, cost: int) -> None:
        """Record ``cost`` units admitted at ``now_ms`` (after a :meth:`check` that allowed)."""
        t = self.clamp(now_ms)
        ts = self._ts
        if len(ts) <= self._head or ts[-1] != t:
            ts.append(t)
            self._cb.append(self._cum)
        self._cum += cost


def combine(decisions: Sequence[tuple[str, Decision]]) -> Decision:
    """One decision from the per-charge decisions of a single acquire.

    Allowed only if every charge allowed; then it reports the charge with the least room.
    Denied otherwise; an oversize charge wins (no wait helps), else the longest wait.
    """
    if not decisions:
        raise RateLimitError("an acquire needs at least one charge")
    denied = [(key, d) for key, d in decisions if not d.allowed]
    if not denied:
        _, tightest = min(decisions, key=lambda kd: kd[1].remaining)
        return tightest
    key, worst = max(denied, key=lambda kd: (kd[1].oversize, kd[1].retry_after_ms))
    return Decision(
        False, worst.limit, worst.remaining, worst.retry_after_ms, key, oversize=worst.oversize
    )


def acquire_logs(pairs: Sequence[tuple[SlidingLog, Charge]], now: float) -> Decision:
    """Charge every log at once, all or nothing: the shared core of the memory backend."""
    now_ms = to_ms(now)
    decisions = [
        (charge.key, log.check(now_ms, charge.cost, charge.limit, charge.window_ms))
        for log, charge in pairs
    ]
    result = combine(decisions)
    if result.allowed:
        for log, charge in pairs:
            log.commit(now_ms, charge.cost)
    return result


def check_unique(charges: Sequence[Charge]) -> None:
    """Reject an acquire that names the same key twice (its charges would not add up)."""
    if not charges:
        raise RateLimitError("an acquire needs at least one charge")
    if len(charges) <= 2:  # the hub's case (plan + burst): no set to build
        if len(charges) == 2 and charges[0].key == charges[1].key:
            raise RateLimitError("each charge in one acquire must use a distinct key")
        return
    keys = {c.key for c in charges}
    if len(keys) != len(charges):
        raise RateLimitError("each charge in one acquire must use a distinct key")
