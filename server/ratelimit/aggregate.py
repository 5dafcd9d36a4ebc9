"""Aggregation of rate-limit denials for the audit log: one record per principal per window.

How it works
------------
A flood of rejected messages must not become a flood of audit rows. The first denial of a
(tenant, actor) opens a window of ``window_s`` seconds; later denials in it only bump its
counters. A window closes when ``now`` reaches its end; :meth:`DenialAggregator.drain` hands
back the closed windows as :class:`DenialSummary` records, which the hub writes as one
``rate_limit.exceeded`` audit entry each. Pure: ``now`` is passed in, nothing is written here.

Memory is bounded: at most ``max_open`` windows are open; opening one more closes the
oldest early: its summary ends at that moment and comes out of the next drain.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from server.ratelimit.window import RateLimitError


@dataclass(frozen=True, slots=True)
class DenialSummary:
    """Denials of one actor in one tenant during ``[window_start, window_end)``."""

    tenant: str
    actor: str
    window_start: float
    window_end: float
    count: int  # denied messages
    units: int  # denied ops (sum of the denied costs)
    last_at: float

    def details(self) -> dict[str, object]:
        """The audit entry's details JSON for this summary (no secrets: counts and times)."""
        return {
            "count": self.count,
            "units": self.units,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "last_at": self.last_at,
        }


@dataclass(slots=True)
class _Open:
    start: float
    count: int
    units: int
    last_at: float


class DenialAggregator:
    """Collects denials and emits one :class:`DenialSummary` per actor per window."""

    def __init__(self, window_s: float = 60.0, max_open: int = 10_000) -> None:
        if window_s <= 0 or max_open < 1:
            raise RateLimitError("DenialAggregator needs window_s > 0 and max_open >= 1")
        self.window_s = window_s
        self.max_open = max_open
        self._open: OrderedDict[tuple[str, str], _Open] = OrderedDict()
        self._closed: list[DenialSummary] = []

    def __len__(self) -> int:
        """Open windows."""
        return len(self._open)

    def record(self, tenant: str, actor: str, now: float, cost: int = 1) -> None:
        """Note one denied message of ``cost`` ops by ``actor`` of ``tenant`` at ``now``."""
        key = (tenant, actor)
        window = self._open.get(key)
        if window is not None and now >= window.start + self.window_s:
            self._close(key, window, window.start + self.window_s)
            window = None
        if window is None:
            if len(self._open) >= self.max_open:
                old_key, old = next(iter(self._open.items()))
                self._close(old_key, old, now)
            # Insertion order is start order: the first item is always the oldest window.
            self._open[key] = _Open(now, 1, cost, now)
            return
        window.count += 1
        window.units += cost
        window.last_at = max(window.last_at, now)

    def drain(self, now: float) -> list[DenialSummary]:
        """Summaries of every window that has closed by ``now``, oldest first."""
        while self._open:
            key, window = next(iter(self._open.items()))
            if now < window.start + self.window_s:
                break
            self._close(key, window, window.start + self.window_s)
        out, self._closed = self._closed, []
        return out

    def drain_all(self) -> list[DenialSummary]:
        """Close every window now (at shutdown) and return all summaries."""
        while self._open:
            key, window = next(iter(self._open.items()))
            self._close(key, window, window.start + self.window_s)
        out, self._closed = self._closed, []
        return out

    def _close(self, key: tuple[str, str], window: _Open, end: float) -> None:
        del self._open[key]
        self._closed.append(
            DenialSummary(
                key[0], key[1], window.start, end, window.count, window.units, window.last_at
            )
        )
