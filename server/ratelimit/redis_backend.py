"""Rate limiter on Redis: several hub processes and hosts share the same windows.

How it works
------------
Each key is the sliding-window log of ``window.py`` stored as two Redis keys:

- ``<prefix><key>:log``, a sorted set: score = entry timestamp (ms), member = ``cum_before``
  (the running total before the entry, a decimal integer, unique because costs are >= 1);
- ``<prefix><key>:cum``, the running total of units admitted.

One Lua script evaluates every charge of an acquire and commits them only if all fit, so the
decision is atomic across processes. Both keys get a TTL of the window plus a second, so idle
keys vanish by themselves. The script runs in O(log n) for an admission and O(log^2 n) for a
denial (binary search over the sorted set by rank), with n <= limit entries per key.

Clocks: every window decision uses Redis's clock (``TIME`` inside the script), never the
caller's: ``acquire`` ignores its ``now``. A process whose clock runs ahead would otherwise
age entries early and reopen each window before its time (with a 5 s skew, 20 ops admitted
in 56 s against 10 per 60 s). Per key the script still clamps the time to the newest entry,
so a Redis failover onto a host whose clock is behind can only make a window stricter, never
reorder it. Under Redis Cluster every key
of one acquire must hash to one slot: :class:`~server.ratelimit.policy.LimitPolicy` puts the
principal inside ``{...}`` in both of its keys for that reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from server.ratelimit.window import Charge, Decision, check_unique, combine, to_ms

_ACQUIRE_LUA = """
-- Redis < 5 replicates scripts verbatim and then forbids writes after TIME; this switches
-- to effects replication there and is a no-op (always on) since Redis 7.
if redis.replicate_commands then redis.replicate_commands() end
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local n = #KEYS / 2
local out = {0}
local all_ok = 1
local clamped = {}
for i = 1, n do
  local log, cumk = KEYS[2 * i - 1], KEYS[2 * i]
  local cost = tonumber(ARGV[3 * i - 1])
  local limit = tonumber(ARGV[3 * i])
  local window = tonumber(ARGV[3 * i + 1])
  local t = now
  local last = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
  if #last > 0 and tonumber(last[2]) > t then t = tonumber(last[2]) end
  clamped[i] = t
  redis.call('ZREMRANGEBYSCORE', log, '-inf', t - window)
  local cum = tonumber(redis.call('GET', cumk) or '0')
  local size = redis.call('ZCARD', log)
  local base = cum
  if size > 0 then base = tonumber(redis.call('ZRANGE', log, 0, 0)[1]) end
  local used = cum - base
  local status, retry = 1, 0
  if cost > limit then
    status, retry, all_ok = 2, window, 0
  elseif used + cost > limit then
    status, all_ok = 0, 0
    -- smallest rank k >= 1 whose cum_before reaches base + need: ranks 0..k-1 must leave
    local target = base + used + cost - limit
    local lo, hi = 1, size
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if tonumber(redis.call('ZRANGE', log, mid, mid)[1]) >= target then
        hi = mid
      else
        lo = mid + 1
      end
    end
    local frees = redis.call('ZRANGE', log, lo - 1, lo - 1, 'WITHSCORES')
    retry = tonumber(frees[2]) + window - now
  end
  local remaining = limit - used
  if remaining < 0 then remaining = 0 end
  out[#out + 1] = status
  out[#out + 1] = remaining
  out[#out + 1] = retry
end
if all_ok == 1 then
  for i = 1, n do
    local log, cumk = KEYS[2 * i - 1], KEYS[2 * i]
    local cost = tonumber(ARGV[3 * i - 1])
    local window = tonumber(ARGV[3 * i + 1])
    local t = clamped[i]
    local cum = tonumber(redis.call('GET', cumk) or '0')
    local last = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
    if #last == 0 or tonumber(last[2]) ~= t then
      redis.call('ZADD', log, t, string.format('%d', cum))
    end
    redis.call('INCRBY', cumk, cost)
    redis.call('PEXPIRE', log, window + 1000)
    redis.call('PEXPIRE', cumk, window + 1000)
    out[3 * i] = out[3 * i] - cost
  end
  out[1] = 1
end
return out
"""


class RedisRateLimiter:
    """A :class:`~server.ratelimit.backend.RateLimiter` sharing its logs through Redis."""

    def __init__(
        self, client: aioredis.Redis, *, prefix: str = "ht:rl:", owns_client: bool = False
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._owns_client = owns_client
        self._script = client.register_script(_ACQUIRE_LUA)
        self._closed = False

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "ht:rl:") -> RedisRateLimiter:
        """A limiter with its own connection pool to the Redis at ``url``."""
        return cls(aioredis.Redis.from_url(url), prefix=prefix, owns_client=True)

    async def acquire(self, charges: Sequence[Charge], now: float) -> Decision:
        """Charge all of ``charges`` or none (see ``RateLimiter.acquire``), at Redis's time.

        ``now`` is ignored: the processes sharing this Redis may disagree about the time, and
        only one clock can decide a shared window.
        """
        return await self._acquire_at(charges, None)

    async def _acquire_at(self, charges: Sequence[Charge], now: float | None) -> Decision:
        """The script at ``now`` (virtual time, for the arithmetic's contract tests), or at
        Redis's clock when ``now`` is ``None``."""
        check_unique(charges)
        keys: list[str] = []
        args: list[int] = [-1 if now is None else to_ms(now)]
        for charge in charges:
            keys += [f"{self._prefix}{charge.key}:log", f"{self._prefix}{charge.key}:cum"]
            args += [charge.cost, charge.limit, charge.window_ms]
        raw: list[Any] = await self._script(keys=keys, args=args)
        decisions: list[tuple[str, Decision]] = []
        for i, charge in enumerate(charges):
            status, remaining, retry = (int(x) for x in raw[1 + 3 * i : 4 + 3 * i])
            decisions.append(
                (
                    charge.key,
                    Decision(
                        allowed=status == 1,
                        limit=charge.limit,
                        remaining=remaining,
                        retry_after_ms=0 if status == 1 else max(retry, 1),
                        oversize=status == 2,
                    ),
                )
            )
        return combine(decisions)

    async def ping(self) -> None:
        """Raise unless Redis answers (readiness checks)."""
        await self._client.ping()

    async def close(self) -> None:
        """Close the connection pool if this limiter created it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()
