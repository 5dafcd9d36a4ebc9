"""When to try a delivery again: exponential backoff with jitter, bounded.

Attempt ``n`` (1-based) that failed is retried after a delay drawn uniformly from
``[delay/2, delay]`` with ``delay = min(max_delay, base * 2**(n-1))``: "half jitter", so
many destinations that failed together do not retry together, and a retry never comes
sooner than half the nominal delay. After ``max_attempts`` failed attempts, or (alerts)
once the event is older than ``max_age``, the delivery is given up (marked failed). Pure:
the caller passes the random draw in ``[0, 1)``.

Defaults: 0.5 s doubling to 5 min, 20 attempts: an outage of 27 to 54 minutes is ridden
out (the sum of the delays), and ``max_age`` 24 h bounds slow-failing receivers. Tests and
benchmarks use short schedules through :meth:`RetryPolicy.from_env`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

ENV_BASE = "HYPERTAB_DELIVERY_RETRY_BASE"
ENV_MAX_DELAY = "HYPERTAB_DELIVERY_RETRY_MAX_DELAY"
ENV_MAX_ATTEMPTS = "HYPERTAB_DELIVERY_MAX_ATTEMPTS"
ENV_MAX_AGE = "HYPERTAB_DELIVERY_MAX_AGE"
ENV_TIMEOUT = "HYPERTAB_DELIVERY_TIMEOUT"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The retry schedule of one destination (seconds)."""

    base: float = 0.5
    max_delay: float = 300.0
    max_attempts: int = 20
    max_age: float = 86_400.0
    timeout: float = 10.0
    """One attempt's bound: connect + TLS + response."""

    def __post_init__(self) -> None:
        if not (self.base > 0 and self.max_delay >= self.base):
            raise ValueError("retry delays must be positive, max_delay >= base")
        if self.max_attempts < 1 or self.max_age <= 0 or self.timeout <= 0:
            raise ValueError("max_attempts, max_age and timeout must be positive")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetryPolicy:
        """The policy from ``HYPERTAB_DELIVERY_*`` (docs/alerts.md), defaults otherwise."""
        env = os.environ if environ is None else environ
        default = cls()

        def number(name: str, fallback: float) -> float:
            raw = env.get(name)
            if not raw:
                return fallback
            try:
                return float(raw)
            except ValueError:
                raise ValueError(f"{name} must be a number of seconds") from None

        return cls(
            base=number(ENV_BASE, default.base),
            max_delay=number(ENV_MAX_DELAY, default.max_delay),
            max_attempts=int(number(ENV_MAX_ATTEMPTS, default.max_attempts)),
            max_age=number(ENV_MAX_AGE, default.max_age),
            timeout=number(ENV_TIMEOUT, default.timeout),
        )

    def delay(self, attempts: int, draw: float) -> float:
        """The wait after ``attempts`` failed attempts (``draw`` uniform in [0, 1))."""
        nominal = min(self.max_delay, self.base * 2.0 ** max(0, attempts - 1))
        return nominal / 2.0 + nominal / 2.0 * draw

    def gives_up(self, attempts: int, first_at: float, now: float) -> bool:
        """Whether a delivery that failed ``attempts`` times is to be marked failed."""
        return attempts >= self.max_attempts or now - first_at >= self.max_age
