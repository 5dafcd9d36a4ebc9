"""Rate limits (security pillar 3): sliding-window logs per principal and per connection.

- ``window``: the pure arithmetic (:class:`SlidingLog`, :class:`Charge`, :class:`Decision`).
- ``backend``: the :class:`RateLimiter` protocol; ``memory`` and ``redis_backend`` implement it.
- ``policy``: what a message is charged (:class:`LimitPolicy`, :class:`PlanLimits`).
- ``abuse``: when sustained denials close the socket (:class:`AbuseTracker`).
- ``aggregate``: one audit record per actor per window of denials (:class:`DenialAggregator`).

Exceptions: :class:`RateLimitError` (local misuse: bad arguments) is the only one raised here;
Redis failures surface as ``redis.exceptions.RedisError`` from the Redis backend.
"""

from __future__ import annotations

from server.ratelimit.abuse import CLOSE_CODE, AbuseTracker
from server.ratelimit.aggregate import DenialAggregator, DenialSummary
from server.ratelimit.backend import RateLimiter, acquire_one
from server.ratelimit.memory import MemoryRateLimiter
from server.ratelimit.policy import LimitPolicy, PlanLimits
from server.ratelimit.redis_backend import RedisRateLimiter
from server.ratelimit.window import Charge, Decision, RateLimitError, SlidingLog

__all__ = [
    "CLOSE_CODE",
    "AbuseTracker",
    "Charge",
    "Decision",
    "DenialAggregator",
    "DenialSummary",
    "LimitPolicy",
    "MemoryRateLimiter",
    "PlanLimits",
    "RateLimitError",
    "RateLimiter",
    "RedisRateLimiter",
    "SlidingLog",
    "acquire_one",
]
