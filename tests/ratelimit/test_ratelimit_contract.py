"""One contract for every RateLimiter backend: memory, and a real Redis."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
import redis.asyncio as aioredis

from server.auth.principal import CredentialKind, Plan, Principal, Scope, TenantId
from server.ratelimit import (
    Charge,
    Decision,
    LimitPolicy,
    MemoryRateLimiter,
    PlanLimits,
    RateLimiter,
    RedisRateLimiter,
    acquire_one,
)


class _VirtualTimeRedis:
    """The Redis script's arithmetic at the test's virtual ``now``: the public ``acquire``
    decides on Redis's clock (tests/security/test_identity_ratelimit_clock.py), which
    cannot be moved, and these tests walk through minutes of windows in no time."""

    def __init__(self, limiter: RedisRateLimiter) -> None:
        self._limiter = limiter

    async def acquire(self, charges: Sequence[Charge], now: float) -> Decision:
        return await self._limiter._acquire_at(charges, now)

    async def close(self) -> None:
        await self._limiter.close()


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        backend: RateLimiter = MemoryRateLimiter()
    else:
        url: str = request.getfixturevalue("redis_url")
        # A fresh prefix per test: tests share one Redis but never each other's windows.
        redis = RedisRateLimiter.from_url(url, prefix=f"t:{uuid.uuid4().hex}:")
        backend = _VirtualTimeRedis(redis)
    yield backend
    await backend.close()
    await backend.close()  # idempotent


def principal(plan: Plan, subject: str = "alice") -> Principal:
    return Principal(
        tenant=TenantId("t1"),
        subject=subject,
        kind=CredentialKind.API_KEY,
        credential_id="k1",
        scopes=frozenset({Scope.TABLES_WRITE}),
        plan=plan,
    )


async def test_exact_limit_and_retry_after(limiter: RateLimiter) -> None:
    for i in range(10):
        d = await acquire_one(limiter, "k", 1, 10, 60.0, 100.0 + i / 1000)
        assert d.allowed and d.remaining == 9 - i
    d = await acquire_one(limiter, "k", 1, 10, 60.0, 100.5)
    assert not d.allowed and d.retry_after_ms == 59_500 and d.denied_key == "k"
    assert not (await acquire_one(limiter, "k", 1, 10, 60.0, 159.999)).allowed
    assert (await acquire_one(limiter, "k", 1, 10, 60.0, 160.0)).allowed


async def test_straddling_burst_is_limited(limiter: RateLimiter) -> None:
    for _ in range(5):
        assert (await acquire_one(limiter, "k", 20, 100, 60.0, 59.9)).allowed
    assert not (await acquire_one(limiter, "k", 1, 100, 60.0, 60.1)).allowed
    assert not (await acquire_one(limiter, "k", 1, 100, 60.0, 119.8)).allowed
    assert (await acquire_one(limiter, "k", 100, 100, 60.0, 119.9)).allowed


async def test_cost_counts_and_denial_consumes_nothing(limiter: RateLimiter) -> None:
    assert (await acquire_one(limiter, "k", 7, 10, 1.0, 0.0)).allowed
    for _ in range(5):
        d = await acquire_one(limiter, "k", 4, 10, 1.0, 0.5)
        assert not d.allowed and d.remaining == 3
    assert (await acquire_one(limiter, "k", 3, 10, 1.0, 0.5)).allowed


async def test_oversize(limiter: RateLimiter) -> None:
    d = await acquire_one(limiter, "k", 11, 10, 1.0, 0.0)
    assert not d.allowed and d.oversize
    assert (await acquire_one(limiter, "k", 10, 10, 1.0, 0.0)).allowed


async def test_keys_are_independent(limiter: RateLimiter) -> None:
    assert (await acquire_one(limiter, "a", 10, 10, 60.0, 0.0)).allowed
    assert not (await acquire_one(limiter, "a", 1, 10, 60.0, 0.0)).allowed
    assert (await acquire_one(limiter, "b", 10, 10, 60.0, 0.0)).allowed


async def test_multi_charge_is_all_or_nothing(limiter: RateLimiter) -> None:
    policy = LimitPolicy(burst_limit=3)
    alice = principal(Plan.FREE)
    for i in range(3):
        assert (await limiter.acquire(policy.charges(alice, "c1", 10), i / 100)).allowed
    d = await limiter.acquire(policy.charges(alice, "c1", 10), 0.5)
    assert not d.allowed and d.denied_key is not None and d.denied_key.endswith(":c:c1")
    assert d.retry_after_ms == 500
    # The burst denial took nothing from the per-minute budget: 70 ops are still there.
    assert (await limiter.acquire(policy.charges(alice, "c2", 70), 0.6)).allowed
    d = await limiter.acquire(policy.charges(alice, "c3", 1), 0.7)
    assert not d.allowed and d.limit == 100 and d.retry_after_ms == 59_300


async def test_plan_change_applies_to_next_check(limiter: RateLimiter) -> None:
    policy = LimitPolicy(burst_limit=1000)
    pro = principal(Plan.PRO)
    assert (await limiter.acquire(policy.charges(pro, "c", 500), 0.0)).allowed
    free = principal(Plan.FREE)  # downgraded: 500 already used of a 100 budget
    d = await limiter.acquire(policy.charges(free, "c", 1), 1.0)
    assert not d.allowed and d.limit == 100 and d.retry_after_ms == 59_000
    assert (await limiter.acquire(policy.charges(free, "c", 100), 60.0)).allowed
    team = principal(Plan.TEAM)  # upgraded: the larger budget is there at once
    assert (await limiter.acquire(policy.charges(team, "c", 5000), 60.5)).allowed


async def test_configured_plan_limits(limiter: RateLimiter) -> None:
    policy = LimitPolicy(plan_limits=PlanLimits({Plan.FREE: 3}), burst_limit=100)
    alice = principal(Plan.FREE)
    for _ in range(3):
        assert (await limiter.acquire(policy.charges(alice, "c", 1), 0.0)).allowed
    assert not (await limiter.acquire(policy.charges(alice, "c", 1), 0.0)).allowed


async def test_matches_memory_reference_on_random_traffic(limiter: RateLimiter) -> None:
    rng = random.Random(4)
    reference = MemoryRateLimiter()
    now = 1_000.0
    for _ in range(400):
        now += rng.choice([0.0, 0.001, 0.05, 0.3, 2.0])
        charges = [
            Charge("p", rng.randint(1, 6), 40, 5.0),
            Charge("c", 1, 8, 1.0),
        ]
        got = await limiter.acquire(charges, now)
        want = reference.acquire_sync(charges, now)
        assert got == want


async def test_redis_keys_expire(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(client, prefix="ttl:")
    await acquire_one(limiter, "k", 1, 10, 2.0, 0.0)
    ttl = await client.pttl("ttl:k:log")
    assert 0 < ttl <= 3_000
    await limiter.close()  # does not close a client it was given
    assert await client.ping()
    await client.delete("ttl:k:log", "ttl:k:cum")
    await client.aclose()
