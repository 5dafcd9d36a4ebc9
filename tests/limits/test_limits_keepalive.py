"""The SDK's keepalive pings are paced with its messages: pinging and sending at the burst
limit is never refused (real hub, real clock, the server counting every ping).

Before: websockets' built-in keepalive sent its pings behind the pacer's back, while the
server charged each one to the connection's burst limit; a client sending at the limit
then went over it with every ping, and was refused (and, repeated, closed with 4029).
"""

from __future__ import annotations

import warnings
from typing import Any

from client_sdk import Client
from client_sdk.errors import RateLimitWarning
from server.hub.admission import AdmissionSettings
from server.ratelimit.policy import LimitPolicy, PlanLimits

BURST = 4


async def test_pinging_and_sending_at_the_limit_is_never_refused(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    _, key = tenant
    hub.admission.enabled = True
    hub.admission.settings = AdmissionSettings(
        policy=LimitPolicy(plan_limits=PlanLimits({}), burst_limit=BURST), abuse_denials=1000
    )
    pings = 0
    count = hub.admission.control_frame

    def counted(session: Any) -> None:  # the real charge, counted
        nonlocal pings
        pings += 1
        count(session)

    hub.admission.control_frame = counted
    caught = warnings.catch_warnings(record=True)
    seen = caught.__enter__()
    warnings.simplefilter("always")
    # A ping every 50 ms: unpaced, 20 pings a second against a limit of 4 messages.
    async with await Client.connect(hub_url, api_key=key, keepalive_interval=0.05) as client:
        assert client.welcome is not None
        assert client.welcome.limits.burst_per_second == BURST
        sent = 0
        while pings < 2 * BURST and sent < 200:  # until the keepalive pinged a few times
            await client.ping()  # each one a message, at the limit
            sent += 1
    caught.__exit__(None, None, None)
    assert pings >= 2 * BURST  # the keepalive pinged, and the server counted each ping
    # Burst pauses (about a second) are not reported as the plan's rate limit.
    assert not [w for w in seen if issubclass(w.category, RateLimitWarning)]
    assert sum(hub.metrics.rate_limited.values()) == 0
