"""WebSocket pings cost what messages cost, and no frame flood can drive the log volume.

Before: websockets answered every ping itself, so pings were free (no burst charge, no
abuse close), and at ``--log-level DEBUG`` every frame became a log line carrying the start
of its payload: 30,000 pings stalled the event loop while 60,000 lines were written.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from frames_helpers import OP_PING, OP_PONG, OP_TEXT, RawSocket, frame

from protocol.codec import JSON
from protocol.messages import Ping, Pong
from server import logbudget
from server.hub.admission import AdmissionSettings
from server.logbudget import LogRateLimit
from server.logs import configure_logging
from server.ratelimit import CLOSE_CODE as RATE_ABUSE
from server.ratelimit import LimitPolicy, PlanLimits


def limit_bursts(hub: Any, burst: int = 20, abuse_denials: int = 20) -> None:
    hub.admission.enabled = True
    hub.admission.settings = AdmissionSettings(
        policy=LimitPolicy(plan_limits=PlanLimits({}), burst_limit=burst),
        abuse_denials=abuse_denials,
    )


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG], ids=["ping", "pong"])
async def test_a_control_frame_flood_is_closed_for_rate_abuse(
    hub: Any, tenant: Any, opcode: int
) -> None:
    limit_bursts(hub)
    _, key = tenant
    raw = await RawSocket.open(hub.port, key, (JSON,))
    await raw.recv()
    await raw.send(b"".join(frame(opcode, b"%d" % n) for n in range(500)))
    assert await raw.close_code() == RATE_ABUSE
    assert hub.metrics.rate_limited["burst"] >= 20
    assert hub.metrics.rate_abuse_closes == 1


async def test_pings_share_the_message_budget(hub: Any, tenant: Any) -> None:
    limit_bursts(hub, burst=20, abuse_denials=1000)
    _, key = tenant
    raw = await RawSocket.open(hub.port, key, (JSON,))
    await raw.recv()
    await raw.send(b"".join(frame(OP_PING) for _ in range(20)))
    await raw.send_message(Ping(id=1))  # the 21st message within a second
    answer = await raw.recv()
    assert getattr(answer, "code", None) == "rate_limited"
    raw.abort()


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """The server's JSON logs at DEBUG, into a buffer (restored afterwards)."""
    root = logging.getLogger()
    level = root.level
    out = io.StringIO()
    handler = configure_logging("DEBUG", stream=out)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)


async def test_frame_logging_is_bounded_and_carries_no_payload(
    hub: Any, tenant: Any, debug_log: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key = tenant  # rate limits off (the hub fixture): every ping is answered
    # A budget of its own: the process-wide one may be spent by an earlier test this second.
    budget = LogRateLimit()
    monkeypatch.setattr(logbudget, "FRAME_LOG_BUDGET", budget)
    raw = await RawSocket.open(hub.port, key, (JSON,))
    await raw.recv()
    flood = 30_000
    dropped = budget.dropped
    await raw.send(b"".join(frame(OP_PING, b"PINGMARK") for _ in range(flood)))
    await raw.send(frame(OP_TEXT, b'{"type":"ping","id":5,"note":"BODYMARK"}'))
    assert await raw.recv(timeout=60) == Pong(id=5)  # every ping before it was handled
    raw.abort()
    lines = debug_log.getvalue().splitlines()
    frame_lines = [line for line in lines if '"msg": "< frame' in line or '"msg": "> frame' in line]
    assert frame_lines, "frames are still logged at DEBUG, in bounded number"
    assert len(frame_lines) < 2_000  # two per ping (in and out) would be 60,000
    # Dropped before a record was even made (counted; reported as `suppressed` on the next
    # frame line that passes).
    assert budget.dropped - dropped >= 2 * flood - len(frame_lines)
    metrics = hub.metrics.render().decode()
    (line,) = [x for x in metrics.splitlines() if x.startswith("hypertab_log_records_dropped")]
    assert float(line.split()[-1]) >= 2 * flood - len(frame_lines)
    assert "PINGMARK" not in debug_log.getvalue()
    assert "BODYMARK" not in debug_log.getvalue()


async def test_pongs_answering_the_servers_pings_are_free(hub: Any, tenant: Any) -> None:
    """Keepalive pongs are the server's own doing: they do not use the client's budget."""
    limit_bursts(hub, burst=20, abuse_denials=1000)
    _, key = tenant
    raw = await RawSocket.open(hub.port, key, (JSON,))
    await raw.recv()
    (session,) = hub.registry.all()
    waiters = [await session.conn.ping(b"keepalive-%d" % n) for n in range(30)]
    for _ in waiters:
        opcode, payload = await raw.recv_frame()
        assert opcode == OP_PING
        await raw.send(frame(OP_PONG, payload))
    for waiter in waiters:
        await waiter  # every pong reached the server
    await raw.send_message(Ping(id=1))
    assert await raw.recv() == Pong(id=1)  # 30 pongs, yet within the budget of 20
    raw.abort()
