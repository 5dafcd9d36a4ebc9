"""The memory backend's own promises: bounded state under garbage keys."""

from __future__ import annotations

import pytest

from server.ratelimit import Charge, MemoryRateLimiter, RateLimitError


def test_key_cap_holds_under_garbage_keys() -> None:
    limiter = MemoryRateLimiter(max_keys=100)
    for i in range(10_000):
        limiter.acquire_sync([Charge(f"junk-{i}", 1, 10, 60.0)], now=0.0)
        assert len(limiter) <= 100


def test_cap_evicts_least_recently_used() -> None:
    limiter = MemoryRateLimiter(max_keys=16)
    hot = Charge("hot", 1, 1000, 60.0)
    for i in range(200):
        limiter.acquire_sync([hot], now=0.0)
        limiter.acquire_sync([Charge(f"junk-{i}", 1, 10, 60.0)], now=0.0)
    # The key in constant use kept its count: 200 of 1000 used.
    assert limiter.acquire_sync([Charge("hot", 800, 1000, 60.0)], now=0.0).allowed
    assert not limiter.acquire_sync([hot], now=0.0).allowed


def test_idle_keys_expire() -> None:
    limiter = MemoryRateLimiter()
    for i in range(10):
        limiter.acquire_sync([Charge(f"k{i}", 1, 10, 1.0)], now=0.0)
    assert len(limiter) == 10
    for step in range(5):
        limiter.acquire_sync([Charge("live", 1, 10, 1.0)], now=5.0 + step)
    assert len(limiter) == 1


def test_rejects_duplicate_keys_and_tiny_cap() -> None:
    limiter = MemoryRateLimiter()
    with pytest.raises(RateLimitError):
        limiter.acquire_sync([Charge("k", 1, 1, 1.0), Charge("k", 1, 1, 1.0)], now=0.0)
    with pytest.raises(RateLimitError):
        MemoryRateLimiter(max_keys=1)
