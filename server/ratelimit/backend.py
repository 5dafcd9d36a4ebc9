"""The rate-limiter backend interface, implemented in memory and on Redis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from server.ratelimit.window import Charge, Decision


class RateLimiter(Protocol):
    """A shared store of sliding-window logs.

    ``acquire`` charges every :class:`Charge` atomically: either all fit and all are
    consumed, or the decision is a denial and nothing is consumed. ``now`` is the caller's
    clock in seconds. The memory backend (one process, one clock) decides at ``now`` and
    reads no clock, which keeps its arithmetic testable; a shared backend decides on its
    own clock and ignores ``now`` (Redis: ``TIME``), so processes whose clocks disagree still
    share one window.
    """

    async def acquire(self, charges: Sequence[Charge], now: float) -> Decision:
        """Charge all of ``charges`` at ``now`` or none of them."""
        ...

    async def close(self) -> None:
        """Release the backend's resources. Idempotent."""
        ...


async def acquire_one(
    limiter: RateLimiter, key: str, cost: int, limit: int, window_s: float, now: float
) -> Decision:
    """Charge a single limit: ``cost`` units of ``limit`` per ``window_s`` under ``key``."""
    return await limiter.acquire((Charge(key, cost, limit, window_s),), now)
