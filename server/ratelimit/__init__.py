"""Rate limits (security pillar 3): sliding-window logs per principal and per connection.

- ``window``: the pure arithmetic (:class:`SlidingLog`, :class:`Charge`, :class:`Decision`).
- ``backend``: the :class:`RateLimiter` protocol; ``memory`` and ``redis_backend`` implement it.
- ``policy``: what a message is charged (:class:`LimitPolicy`, :class:`PlanLimits`).
- ``abuse``: when sustained denials close the socket (:class:`AbuseTracker`).
- ``aggregate``: one audit record per actor per window of denials (:class:`DenialAggregator`).

Exceptions: :class:`RateLimitError` (local misuse: bad arguments) is the only one raised here;
Redis failures surface as ``redis.exceptions.RedisError`` from the Redis backend
(:func:`backend_errors` names them without importing redis).

``RedisRateLimiter`` is imported on first use: a hub without ``HYPERTAB_REDIS_URL`` never
loads the redis package (~10 MB of RSS with its dependencies).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from server.ratelimit.abuse import CLOSE_CODE, AbuseTracker
from server.ratelimit.aggregate import DenialAggregator, DenialSummary
from server.ratelimit.backend import RateLimiter, acquire_one
from server.ratelimit.memory import MemoryRateLimiter
from server.ratelimit.policy import LimitPolicy, PlanLimits
from server.ratelimit.window import Charge, Decision, RateLimitError, SlidingLog

if TYPE_CHECKING:
    from server.ratelimit.redis_backend import RedisRateLimiter


def __getattr__(name: str) -> object:
    if name == "RedisRateLimiter":
        from server.ratelimit.redis_backend import RedisRateLimiter

        return RedisRateLimiter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def backend_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a failing limiter backend raises, for ``except backend_errors():``.

    Empty while redis was never imported: then no Redis backend exists to raise them.
    """
    exceptions = sys.modules.get("redis.exceptions")
    return (exceptions.RedisError,) if exceptions is not None else ()


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
    "backend_errors",
]
