"""Which limits apply to a message: per principal by plan, plus a per-connection burst."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from server.auth.principal import Plan, Principal
from server.ratelimit.window import Charge, RateLimitError

_DEFAULTS: dict[Plan, int] = {
    Plan.FREE: 100,
    Plan.PRO: 1_000,
    Plan.TEAM: 10_000,
    Plan.ENTERPRISE: 50_000,
}


class PlanLimits(Mapping[Plan, int]):
    """Ops per minute for each plan: an immutable mapping that covers every plan.

    ``PlanLimits()`` gives the defaults (free 100, pro 1,000, team 10,000, enterprise
    50,000); ``PlanLimits({Plan.FREE: 60})`` overrides some plans and keeps the rest.
    """

    __slots__ = ("_limits",)

    def __init__(self, overrides: Mapping[Plan, int] | None = None) -> None:
        limits = dict(_DEFAULTS)
        for plan, limit in (overrides or {}).items():
            limits[Plan(plan)] = limit
        for plan, limit in limits.items():
            if limit < 1:
                raise RateLimitError(f"limit for plan {plan} must be >= 1, got {limit}")
        self._limits = limits

    def __getitem__(self, plan: Plan) -> int:
        return self._limits[plan]

    def __iter__(self) -> Iterator[Plan]:
        return iter(self._limits)

    def __len__(self) -> int:
        return len(self._limits)

    def __repr__(self) -> str:
        return f"PlanLimits({self._limits!r})"


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """The hub's rate-limit policy: what one incoming message is charged.

    - Per principal: a batch of ``ops`` ops costs ``ops`` against the plan's per-minute limit
      (so batching cannot bypass it). The key is the tenant and subject, shared by all the
      principal's connections on every node; the plan is read per message, so a plan change
      applies to the very next check against the same trailing window. A key created with
      a ``rate`` is held to that when it is tighter than its plan (``principal_limit``).
    - Per connection: every message costs 1 against ``burst_limit`` per ``burst_window_s``.
      It counts messages, not ops, so a legitimate large batch is not refused by the burst
      limit; it stops one socket from flooding the hub with small frames.
    """

    plan_limits: PlanLimits = field(default_factory=PlanLimits)
    window_s: float = 60.0
    burst_limit: int = 20
    burst_window_s: float = 1.0

    def principal_limit(self, principal: Principal) -> int:
        """Ops per window for ``principal``: the plan's, or the credential's own ``rate``
        (per minute, scaled to the window) when that is tighter (agent keys)."""
        limit = self.plan_limits[principal.plan]
        if principal.rate is not None:
            limit = min(limit, max(1, round(principal.rate * self.window_s / 60.0)))
        return limit

    @staticmethod
    def principal_key(principal: Principal) -> str:
        """The rate-limit key shared by all of a principal's connections."""
        # Braces: a Redis Cluster hash tag, so both keys of one acquire share a slot.
        return f"p:{{{principal.tenant}/{principal.subject}}}"

    def charges(self, principal: Principal, connection_id: str, ops: int) -> tuple[Charge, ...]:
        """The charges for one message of ``ops`` ops (at least 1) on ``connection_id``."""
        key = self.principal_key(principal)
        return (
            Charge(key, max(ops, 1), self.principal_limit(principal), self.window_s),
            Charge(f"{key}:c:{connection_id}", 1, self.burst_limit, self.burst_window_s),
        )
