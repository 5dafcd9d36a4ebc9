"""Admission control in the hub: rate limits per principal and per connection, abuse closes,
and the pre-authentication throttle on failed handshakes.

How it works
------------
:class:`Admission` is installed as ``Session.admit`` and runs for every message that passed
authorization, before it is handled:

- ``apply`` costs its number of ops against the principal's per-minute plan limit (so one
  batch of 100 ops costs as much as 100 batches of one: batching cannot bypass the limit);
  ``tool_call`` and ``audit_export`` cost 1 each (each writes an audit entry); the message
  table (``server/hub/messages.py``) holds each type's cost. Every message,
  whatever its type, also costs 1 against the connection's burst limit per second. Both are
  charged together, all or nothing (``server/ratelimit``).
- A refused message gets ``error`` ``rate_limited`` with ``retry_after_ms`` (exact for the
  sliding-window log) and is not handled; nothing else is affected. A batch with more ops
  than the plan allows per window can never pass: ``over_plan_limit`` (not temporary).
- Each refusal is noted in the :class:`~server.ratelimit.DenialAggregator` (one audit entry
  per principal per window, written by the audit housekeeper) and in the connection's
  :class:`~server.ratelimit.AbuseTracker`; a connection that keeps sending while refused
  (20 refusals within 10 s by default) is closed with 4029 ``RATE_ABUSE``.
- The plan is the one read at the handshake (``Principal.plan``): a plan change applies to
  connections opened after it, against the same trailing window. A key with its own
  ``rate`` (``key create --rate``) is held to the tighter of that and its plan's limit.

Before authentication the only state kept is per peer address, and only for *failed*
handshakes: after ``auth_failures`` failures within ``auth_failure_window_s`` from one
address, its handshakes get 429 (without touching the key store) until the window frees a
slot. That state is bounded: a private in-memory limiter with at most ``MAX_PREAUTH_KEYS``
addresses (least recently used evicted), or Redis keys with a TTL.

Backends: :class:`~server.ratelimit.MemoryRateLimiter` alone, a
:class:`~server.ratelimit.RedisRateLimiter` when ``HYPERTAB_REDIS_URL`` is set (windows
shared by every hub process). If Redis fails, admission falls back to an in-process limiter
(each process then enforces the limits on its own traffic) and logs it; it never admits
unlimited traffic.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from protocol.messages import ClientMessage, Error, ServerLimits
from server.audit.events import actor_of
from server.auth.errors import AuthFailure
from server.auth.principal import Plan, Principal
from server.hub.messages import MESSAGE_TYPES
from server.hub.metrics import HubMetrics
from server.ratelimit import (
    CLOSE_CODE,
    AbuseTracker,
    Charge,
    Decision,
    DenialAggregator,
    LimitPolicy,
    MemoryRateLimiter,
    PlanLimits,
    RateLimiter,
    backend_errors,
)
from server.tasks import TaskOwner

if TYPE_CHECKING:
    from server.hub.session import Session

log = logging.getLogger(__name__)

MAX_PREAUTH_KEYS = 10_000
"""Most peer addresses the in-memory failed-handshake limiter tracks at once."""

_FALLBACK_LOG_EVERY_S = 30.0

# Refusals that are guesses at a credential (AuthFailure values, and the gate's own
# credential refusals); origin and connection-cap refusals are not throttled.
_THROTTLED_REASONS = frozenset(f.value for f in AuthFailure) | {
    "token_in_query",
    "ambiguous_credential",
}


def message_cost(message: ClientMessage) -> int:
    """What a message costs against the plan limit (its row of ``server/hub/messages.py``):
    ops for a batch, 1 for what writes an audit entry, 0 for reads and the like (which only
    count against the connection's burst limit)."""
    row = MESSAGE_TYPES.get(type(message))
    return 0 if row is None else row.cost_of(message)


def plan_limits_from_env(value: str | None) -> PlanLimits:
    """``free=100,pro=1000`` (``HYPERTAB_RATE_LIMITS``) as :class:`PlanLimits`."""
    overrides: dict[Plan, int] = {}
    for item in (value or "").split(","):
        if item.strip():
            plan, _, limit = item.partition("=")
            overrides[Plan(plan.strip())] = int(limit)
    return PlanLimits(overrides)


@dataclass(slots=True)
class AdmissionSettings:
    """Tunable limits (environment: see ``docs/operations.md``)."""

    policy: LimitPolicy = field(default_factory=LimitPolicy)
    abuse_denials: int = 20
    abuse_within_s: float = 10.0
    auth_failures: int = 30
    auth_failure_window_s: float = 60.0
    enabled: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AdmissionSettings:
        """Read ``HYPERTAB_RATE_LIMITS`` (``off`` disables every limit, for trusted
        benchmarks and tests), ``HYPERTAB_BURST_PER_SECOND``, ``HYPERTAB_ABUSE_DENIALS`` and
        ``HYPERTAB_AUTH_FAILURES_PER_MINUTE``."""
        e = os.environ if env is None else env
        if (e.get("HYPERTAB_RATE_LIMITS") or "").strip().lower() == "off":
            return cls(enabled=False)
        return cls(
            policy=LimitPolicy(
                plan_limits=plan_limits_from_env(e.get("HYPERTAB_RATE_LIMITS")),
                burst_limit=int(e.get("HYPERTAB_BURST_PER_SECOND") or 20),
            ),
            abuse_denials=int(e.get("HYPERTAB_ABUSE_DENIALS") or 20),
            auth_failures=int(e.get("HYPERTAB_AUTH_FAILURES_PER_MINUTE") or 30),
        )


class Admission:
    """Rate limits for one hub process; call it as the ``Session.admit`` hook."""

    def __init__(
        self,
        limiter: RateLimiter,
        settings: AdmissionSettings | None = None,
        *,
        preauth: RateLimiter | None = None,
        metrics: HubMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limiter = limiter
        self.settings = settings or AdmissionSettings()
        self.preauth = preauth if preauth is not None else MemoryRateLimiter(MAX_PREAUTH_KEYS)
        self.metrics = metrics
        self.clock = clock
        self.enabled = self.settings.enabled
        """False: admit everything and announce no limits (0); metrics still count."""
        self.denials = DenialAggregator(window_s=self.settings.policy.window_s)
        self._fallback = MemoryRateLimiter()
        self._fallback_logged = float("-inf")
        self._abuse: weakref.WeakKeyDictionary[Session, AbuseTracker] = weakref.WeakKeyDictionary()
        self._charges: weakref.WeakKeyDictionary[
            Session, tuple[LimitPolicy, int, Principal, tuple[Charge, ...]]
        ] = weakref.WeakKeyDictionary()
        self._blocked: OrderedDict[str, float] = OrderedDict()  # address -> blocked until
        self._background = TaskOwner("admission")
        self._abusers: weakref.WeakSet[Session] = weakref.WeakSet()  # closing for abuse
        self.on_abuse: list[Callable[[Session], None]] = []
        """Called with each session closed for abuse (the alerts subscribe). Must not block."""

    @classmethod
    def for_url(
        cls,
        redis_url: str | None,
        settings: AdmissionSettings | None = None,
        *,
        metrics: HubMetrics | None = None,
    ) -> Admission:
        """Windows shared through the Redis at ``redis_url`` when set, else in memory."""
        if redis_url:
            from server.ratelimit.redis_backend import RedisRateLimiter

            limiter = RedisRateLimiter.from_url(redis_url)
            return cls(limiter, settings, preauth=limiter, metrics=metrics)
        return cls(MemoryRateLimiter(), settings, metrics=metrics)

    @property
    def policy(self) -> LimitPolicy:
        """The current policy (read per message: replace ``settings.policy`` to retune)."""
        return self.settings.policy

    def limits_for(self, principal: Principal, limits: ServerLimits) -> ServerLimits:
        """``limits`` with the principal's real rates filled in (for ``welcome``)."""
        if not self.enabled:
            return limits
        p = self.policy
        limits.ops_per_minute = round(p.principal_limit(principal) * 60.0 / p.window_s)
        limits.burst_per_second = round(p.burst_limit / p.burst_window_s)
        return limits

    async def close(self) -> None:
        """Stop the background counting, then release the limiters."""
        await self._background.cancel_all()
        await self.limiter.close()
        if self.preauth is not self.limiter:
            await self.preauth.close()
        await self._fallback.close()

    # --- messages ---------------------------------------------------------------------------

    async def __call__(self, session: Session, message: ClientMessage) -> Error | None:
        """The ``Session.admit`` hook: ``None`` admits, an ``Error`` refuses."""
        metrics = self.metrics
        if metrics is not None:
            metrics.message_in(message)
        if not self.enabled:
            return None
        principal = session.principal
        cost = message_cost(message)
        charges = self._charges_of(session, cost)
        now = self.clock()
        if isinstance(self.limiter, MemoryRateLimiter):
            decision = self.limiter.acquire_sync(charges, now)
        else:
            decision = await self._acquire(charges, now)
        if decision.allowed:
            return None
        return self._refuse(session, principal, decision, cost, now)

    def _charges_of(self, session: Session, cost: int) -> tuple[Charge, ...]:
        # Charges are immutable: reuse the last ones this session used for this cost and
        # policy (almost every message of a session costs the same), and call the memory
        # limiter without a coroutine. Admission runs once per message: it is hot.
        p = self.policy
        principal = session.principal
        cached = self._charges.get(session)
        if cached is not None and cached[0] is p and cached[1] == cost and cached[2] is principal:
            return cached[3]
        key = p.principal_key(principal)
        burst = Charge(f"{key}:c:{session.id}", 1, p.burst_limit, p.burst_window_s)
        if cost:
            charges: tuple[Charge, ...] = (
                Charge(key, cost, p.principal_limit(principal), p.window_s),
                burst,
            )
        else:
            charges = (burst,)
        self._charges[session] = (p, cost, principal, charges)
        return charges

    def control_frame(self, session: Session) -> None:
        """A WebSocket ping or pong from ``session``'s client: one message against the
        connection's burst limit, like any message (websockets answers pings itself, so
        without this a ping flood would cost the sender nothing). Synchronous, called from
        the frame parser: in memory the window is the one messages use; with Redis it is an
        in-process window of the same size (the connection lives in this process). Refusals
        count toward the 4029 abuse close; nothing is sent back for them."""
        if not self.enabled or session.outbox.closing:  # closing: nothing left to protect
            return
        charges = self._charges_of(session, 0)
        limiter = self.limiter if isinstance(self.limiter, MemoryRateLimiter) else self._fallback
        now = self.clock()
        decision = limiter.acquire_sync(charges, now)
        if not decision.allowed:
            self._refuse(session, session.principal, decision, 0, now)

    async def _acquire(self, charges: tuple[Charge, ...], now: float) -> Decision:
        try:
            return await self.limiter.acquire(charges, now)
        except backend_errors() as exc:
            if now - self._fallback_logged >= _FALLBACK_LOG_EVERY_S:
                self._fallback_logged = now
                log.warning(
                    "rate limiter backend failed, limiting in process (%s)", type(exc).__name__
                )
            return await self._fallback.acquire(charges, now)

    def _refuse(
        self, session: Session, principal: Principal, decision: Decision, cost: int, now: float
    ) -> Error:
        burst = decision.denied_key is not None and ":c:" in decision.denied_key
        kind = "oversize" if decision.oversize else "burst" if burst else "plan"
        if self.metrics is not None:
            self.metrics.rate_limited[kind] += 1
        self.denials.record(principal.tenant, actor_of(principal), now, max(cost, 1))
        if decision.oversize:
            return Error(
                code="over_plan_limit",
                message=f"a batch may carry at most {decision.limit} ops on this plan; split it",
            )
        tracker = self._abuse.get(session)
        if tracker is None:
            s = self.settings
            tracker = self._abuse[session] = AbuseTracker(s.abuse_denials, s.abuse_within_s)
        if tracker.record_denial(now) and session not in self._abusers:
            self._abusers.add(session)
            if self.metrics is not None:
                self.metrics.rate_abuse_closes += 1
            session.close_now(CLOSE_CODE, "rate limit abuse")
            for hook in self.on_abuse:
                hook(session)
        what = "connection burst" if burst else "plan"
        return Error(
            code="rate_limited",
            message=f"over the {what} rate limit; retry after retry_after_ms",
            retry_after_ms=decision.retry_after_ms,
        )

    # --- failed handshakes ------------------------------------------------------------------

    def handshake_retry_after(self, address: str | None) -> int | None:
        """Milliseconds until ``address`` may try to authenticate again, or ``None``."""
        if address is None or not self.enabled:
            return None
        until = self._blocked.get(address)
        if until is None:
            return None
        wait = until - self.clock()
        if wait <= 0:
            del self._blocked[address]
            return None
        if self.metrics is not None:
            self.metrics.handshakes_throttled += 1
        return max(1, round(wait * 1000))

    def auth_failure_hook(self, reason: str, ip: str | None, credential_id: str | None) -> None:
        """The gate's ``on_auth_failure`` hook: count it; charge the address for a refused
        credential (not for origin or connection-cap refusals, which say nothing of a guess)."""
        if self.metrics is not None:
            self.metrics.auth_failures[reason] += 1
        if reason not in _THROTTLED_REASONS or ip is None or not self.enabled:
            return
        if isinstance(self.preauth, MemoryRateLimiter):
            self._note_failure(ip, self.preauth.acquire_sync((self._ip_charge(ip),), self.clock()))
            return
        self._background.spawn(self.handshake_failed(ip), "count failed handshake")

    def _ip_charge(self, address: str) -> Charge:
        s = self.settings
        return Charge(f"ip:{address}", 1, s.auth_failures, s.auth_failure_window_s)

    def _note_failure(self, address: str, decision: Decision) -> None:
        if decision.allowed:
            return
        self._blocked[address] = self.clock() + decision.retry_after_ms / 1000
        self._blocked.move_to_end(address)
        while len(self._blocked) > MAX_PREAUTH_KEYS:
            self._blocked.popitem(last=False)

    async def handshake_failed(self, address: str | None) -> None:
        """Count a refused credential from ``address``; block it once over the limit."""
        if address is None:
            return
        charge = self._ip_charge(address)
        now = self.clock()
        try:
            decision = await self.preauth.acquire((charge,), now)
        except backend_errors():
            decision = await self._fallback.acquire((charge,), now)
        self._note_failure(address, decision)
