"""Rate windows shared through Redis are decided on Redis's clock, not on a caller's.

Two limiters on one Redis stand for two hub processes; one of them has a clock running
ahead. On the old code the skewed process aged the other's entries early and reopened the
window before its time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest

from server.ratelimit import RedisRateLimiter, acquire_one

LIMIT, WINDOW_S = 10, 60.0


@pytest.fixture
async def limiters(redis_url: str) -> AsyncIterator[tuple[RedisRateLimiter, RedisRateLimiter]]:
    """Two limiters on one Redis and one key prefix: two hub processes, "honest" and "ahead"."""
    prefix = f"skew:{uuid.uuid4().hex}:"
    honest = RedisRateLimiter.from_url(redis_url, prefix=prefix)
    ahead = RedisRateLimiter.from_url(redis_url, prefix=prefix)
    try:
        yield honest, ahead
    finally:
        await honest.close()
        await ahead.close()


async def test_a_clock_running_ahead_does_not_reopen_the_window(
    limiters: tuple[RedisRateLimiter, RedisRateLimiter],
) -> None:
    honest, ahead = limiters
    for _ in range(LIMIT):
        assert (await acquire_one(honest, "p", 1, LIMIT, WINDOW_S, time.time())).allowed
    # A process whose clock is a whole window (and a bit) ahead: on the caller's clock
    # every entry above has left the window already.
    skewed = time.time() + WINDOW_S + 5.0
    denied = await acquire_one(ahead, "p", 1, LIMIT, WINDOW_S, skewed)
    assert not denied.allowed
    # retry_after is measured on Redis's clock too: about a window, not "now".
    assert 55_000 <= denied.retry_after_ms <= 60_000
    # ... and a clock running behind does not make it look longer.
    behind = await acquire_one(ahead, "p", 1, LIMIT, WINDOW_S, time.time() - 3600.0)
    assert not behind.allowed and behind.retry_after_ms <= 60_000


async def test_a_skewed_process_gets_no_extra_budget_over_windows(
    limiters: tuple[RedisRateLimiter, RedisRateLimiter],
) -> None:
    """20 ops in 56 s against 10 per 60 s was the old result of a 5 s skew; now 10."""
    honest, ahead = limiters
    admitted = 0
    for i in range(40):
        limiter, skew = (honest, 0.0) if i % 2 == 0 else (ahead, 5.0 + i * 1.5)
        d = await acquire_one(limiter, "q", 1, LIMIT, WINDOW_S, time.time() + skew)
        admitted += d.allowed
    assert admitted == LIMIT
