"""Client-side pacing: send no faster than the limits the server announced in ``welcome``.

The hub limits each connection to ``burst_per_second`` messages per second and each
principal to ``ops_per_minute`` ops per minute (sliding windows; ``server/hub/admission.py``),
and closes a connection that keeps sending while refused (4029). A client that pipelines
hundreds of batches would run into both, so the SDK keeps the same two windows locally and
delays a send until it fits. A refusal can still happen (several connections of one
principal share the per-minute window, and network jitter moves arrivals); the client then
waits ``retry_after_ms`` and resends (``Client._route``). Limits of 0 mean "not limited".

The server counts WebSocket pings as messages too (websockets answers them by itself, so a
ping flood would otherwise be free). The client's own keepalive pings therefore go through
the same window (``Client._keepalive``, instead of websockets' built-in keepalive, which
sent them behind the pacer's back): a client sending at the limit while it pings stays
within it.

Waiting is never silent: the first time a client has to hold back for the per-minute plan
limit (or the server refuses a batch as rate limited), it issues one
:class:`~client_sdk.errors.RateLimitWarning` with the limit and the wait, so a script that
slows down says why. Short burst-limit pauses (under a second) do not warn.

:class:`Pacer` is pure arithmetic (``now`` passed in) plus one ``wait`` coroutine.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections import deque

from client_sdk.errors import RateLimitWarning
from protocol.audit import AuditExport, ToolCall
from protocol.messages import Apply

MARGIN_S = 0.02
"""Extra wait past a window edge: arrivals at the server are not spaced exactly as sends."""

KEEPALIVE_INTERVAL_S = 20.0
"""Default seconds between the client's keepalive pings."""

KEEPALIVE_TIMEOUT_S = 20.0
"""A ping unanswered this long means the connection is dead: it is closed and reopened."""

WARN_AFTER_S = 1.0
"""A wait at least this long is a rate limit worth telling the user about (once)."""


class Pacer:
    """Two sliding windows: messages per second and ops per minute."""

    def __init__(self, ops_per_minute: int = 0, burst_per_second: int = 0) -> None:
        self.ops_per_minute = ops_per_minute
        self.burst_per_second = burst_per_second
        self._messages: deque[float] = deque()
        self._ops: deque[tuple[float, int]] = deque()
        self._ops_used = 0
        self.warned = False
        """Whether the one :class:`RateLimitWarning` of this client was issued."""

    def warn(self, wait_s: float, why: str) -> None:
        """Issue the client's one :class:`RateLimitWarning` (later calls do nothing)."""
        if self.warned:
            return
        self.warned = True
        warnings.warn(
            f"hypertab: rate limited ({why}); waiting {wait_s:.1f} s before sending more. "
            "Batch several rows per insert, or ask for a bigger plan "
            "(hypertab tenant plan). Further waits are not reported.",
            RateLimitWarning,
            stacklevel=2,
        )

    def reset(self, ops_per_minute: int, burst_per_second: int) -> None:
        """New limits (from a ``welcome``); past sends still count against them."""
        self.ops_per_minute = ops_per_minute
        self.burst_per_second = burst_per_second

    def delay(self, cost: int, now: float) -> float:
        """Seconds to wait before a message of ``cost`` ops fits (0: send now)."""
        self._expire(now)
        wait = 0.0
        burst = self.burst_per_second
        if burst > 0 and len(self._messages) + 1 > burst:
            oldest = self._messages[len(self._messages) - burst]
            wait = oldest + 1.0 + MARGIN_S - now
        return max(wait, self._plan_delay(cost, now), 0.0)

    def _plan_delay(self, cost: int, now: float) -> float:
        """The part of :meth:`delay` the per-minute plan limit asks for."""
        limit = self.ops_per_minute
        if limit > 0 and 0 < cost <= limit and self._ops_used + cost > limit:
            need = self._ops_used + cost - limit
            freed = 0
            for at, ops in self._ops:
                freed += ops
                if freed >= need:
                    return at + 60.0 + MARGIN_S - now
        return 0.0

    def record(self, cost: int, now: float) -> None:
        """Note a message of ``cost`` ops sent at ``now``."""
        if self.burst_per_second > 0:
            self._messages.append(now)
        if self.ops_per_minute > 0 and cost > 0:
            self._ops.append((now, cost))
            self._ops_used += cost

    def _expire(self, now: float) -> None:
        while self._messages and self._messages[0] <= now - 1.0 - MARGIN_S:
            self._messages.popleft()
        while self._ops and self._ops[0][0] <= now - 60.0 - MARGIN_S:
            self._ops_used -= self._ops.popleft()[1]

    async def wait(self, cost: int) -> None:
        """Sleep until a message of ``cost`` ops fits, then count it as sent."""
        while True:
            now = time.monotonic()
            delay = self.delay(cost, now)
            if delay <= 0:
                self.record(cost, now)
                return
            if self._plan_delay(cost, now) >= WARN_AFTER_S:  # a burst pause is at most ~1 s
                self.warn(delay, f"{self.ops_per_minute} ops per minute on this plan")
            await asyncio.sleep(delay)


def plan_cost(message: object) -> int:
    """What a message costs against ``ops_per_minute`` (as the server counts it)."""
    if isinstance(message, Apply):
        return len(message.ops)
    if isinstance(message, (ToolCall, AuditExport)):
        return 1
    return 0
