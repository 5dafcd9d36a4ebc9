"""Rate limits in the running hub: real sockets, the SDK, a fake admission clock.

The admission clock is the only thing faked: windows are exact in milliseconds, so the
tests move it to the edges instead of sleeping.
"""

from __future__ import annotations

import asyncio
import http
import time
from typing import Any

import pytest
from limits_helpers import FakeClock, Raw, enable_limits, inserts
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from client_sdk import Client
from protocol.audit import ToolCall
from protocol.messages import Ack, Error, Ping, Pong
from server.auth.principal import Plan
from server.hub.admission import MAX_PREAUTH_KEYS, Admission
from server.ratelimit import MemoryRateLimiter, RedisRateLimiter


async def test_welcome_announces_the_real_limits(hub: Any, hub_url: str, tenant: Any) -> None:
    record, key = tenant
    hub.admission.enabled = True
    raw = await Raw.connect(hub_url, key)
    assert raw.welcome.plan == "free"
    assert raw.welcome.limits.ops_per_minute == 100
    assert raw.welcome.limits.burst_per_second == 20
    await raw.close()
    await hub.control.set_plan(record.id, Plan.TEAM)
    raw = await Raw.connect(hub_url, key)
    assert raw.welcome.limits.ops_per_minute == 10_000
    await raw.close()


async def test_a_burst_straddling_a_window_boundary_is_still_limited(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    _, key = tenant
    clock = enable_limits(hub, plans={Plan.FREE: 10})
    raw = await Raw.connect(hub_url, key)
    clock.t = 1_000_059.9  # the last tenth of a second of "minute 0"
    assert isinstance(await raw.create_table(), Ack)
    assert isinstance(await raw.apply("t1", inserts(9)), Ack)  # 10 ops: the whole budget
    clock.t = 1_000_060.1  # "minute 1" of a fixed window would start afresh here
    refused = await raw.apply("t1", inserts(1))
    assert isinstance(refused, Error) and refused.code == "rate_limited"
    # Exact: the first admission (at 59.9) leaves the 60 s window at 119.9.
    assert refused.retry_after_ms == 59_800
    clock.t = 1_000_119.899
    assert isinstance(await raw.apply("t1", inserts(1)), Error)  # 1 ms early: still inside
    clock.t = 1_000_119.9  # the window is (t - 60, t]: the entry at 59.9 has just left
    assert isinstance(await raw.apply("t1", inserts(1)), Ack)
    await raw.close()


async def test_honest_traffic_at_the_limit_is_never_refused(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    _, key = tenant
    clock = enable_limits(hub, plans={Plan.FREE: 100}, burst=20)
    raw = await Raw.connect(hub_url, key)
    assert isinstance(await raw.create_table(), Ack)
    # 20 messages per second and 100 ops per minute exactly, for three minutes.
    sent = 0
    for minute in range(3):
        base = 1_000_000.0 + 60.0 * (minute + 1)
        for i in range(20):
            clock.t = base + i * 0.05
            answer = await raw.apply("t1", inserts(5))
            assert isinstance(answer, Ack), answer
            sent += 1
        for i in range(20):  # reads cost nothing against the plan, only the burst
            clock.t = base + 1.0 + i * 0.05
            await raw.send(Ping(id=raw.next_id()))
            assert isinstance(await raw.recv(), Pong)
    assert hub.metrics.rate_limited.total() == 0
    await raw.close()


async def test_batching_cannot_bypass_the_limit(hub: Any, hub_url: str, tenant: Any) -> None:
    _, key = tenant
    enable_limits(hub, plans={Plan.FREE: 100})
    raw = await Raw.connect(hub_url, key)
    assert isinstance(await raw.create_table(), Ack)
    assert isinstance(await raw.apply("t1", inserts(99)), Ack)  # 1 + 99 = 100 ops
    refused = await raw.apply("t1", inserts(1))
    assert isinstance(refused, Error) and refused.code == "rate_limited"
    too_big = await raw.apply("t1", inserts(101))  # can never fit: not temporary
    assert isinstance(too_big, Error) and too_big.code == "over_plan_limit"
    assert too_big.retry_after_ms is None
    await raw.close()


async def test_a_refused_message_is_not_applied_and_nothing_else_is_lost(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    _, key = tenant
    clock = enable_limits(hub, plans={Plan.FREE: 5})
    raw = await Raw.connect(hub_url, key)
    assert isinstance(await raw.create_table(), Ack)
    first = await raw.apply("t1", inserts(4))
    assert isinstance(first, Ack)
    refused = await raw.apply("t1", inserts(2))
    assert isinstance(refused, Error) and refused.code == "rate_limited"
    await raw.send(Ping(id=raw.next_id()))  # the connection still answers
    assert isinstance(await raw.recv(), Pong)
    clock.t += 61
    later = await raw.apply("t1", inserts(2))
    assert isinstance(later, Ack) and later.version == first.version + 1  # no gap
    client = await Client.connect(hub_url, api_key=key)
    try:
        rows = (await client.query("t1")).rows
    finally:
        await client.close()
    assert len(rows) == 6  # 4 + 2: the refused batch left nothing behind
    await raw.close()


async def test_the_sdk_waits_retry_after_and_resends(hub: Any, hub_url: str, tenant: Any) -> None:
    _, key = tenant
    clock = enable_limits(hub, plans={Plan.FREE: 10})
    raw = await Raw.connect(hub_url, key)  # another connection of the same principal
    assert isinstance(await raw.create_table(), Ack)
    assert isinstance(await raw.apply("t1", inserts(9)), Ack)  # budget spent at t0
    client = await Client.connect(hub_url, api_key=key)
    try:
        clock.t += 59.8  # the budget frees 200 ms from now (admission time)
        task = asyncio.create_task(client.apply("t1", inserts(1)))
        while hub.metrics.rate_limited["plan"] < 1:  # the SDK's first try was refused
            await asyncio.sleep(0.01)
        assert not task.done()
        clock.t += 1.0  # past the window edge: the SDK's resend fits
        version = await asyncio.wait_for(task, 30)
        assert version == 3
    finally:
        await client.close()
        await raw.close()


async def test_sustained_abuse_closes_the_socket_with_4029(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    _, key = tenant
    enable_limits(hub, burst=2, abuse_denials=5)
    raw = await Raw.connect(hub_url, key)
    for _ in range(10):  # keeps sending while refused (the clock never moves)
        await raw.send(Ping(id=raw.next_id()))
    answers: list[Any] = []
    with pytest.raises(ConnectionClosed) as info:
        while True:
            answers.append(await raw.recv())
    assert info.value.rcvd is not None and info.value.rcvd.code == 4029
    assert [type(a).__name__ for a in answers[:2]] == ["Pong", "Pong"]
    assert all(isinstance(a, Error) and a.code == "rate_limited" for a in answers[2:])
    assert hub.metrics.rate_abuse_closes == 1


async def test_a_plan_change_applies_to_new_connections(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    record, key = tenant
    enable_limits(hub, plans={Plan.FREE: 10, Plan.PRO: 20})
    old = await Raw.connect(hub_url, key)
    assert isinstance(await old.create_table(), Ack)
    assert isinstance(await old.apply("t1", inserts(9)), Ack)
    await hub.control.set_plan(record.id, Plan.PRO)
    assert isinstance(await old.apply("t1", inserts(1)), Error)  # plan read at the handshake
    new = await Raw.connect(hub_url, key)
    assert new.welcome.plan == "pro" and new.welcome.limits.ops_per_minute == 20
    # The same trailing window, the new limit: 10 used, 10 more fit, the 11th does not.
    assert isinstance(await new.apply("t1", inserts(10)), Ack)
    assert isinstance(await new.apply("t1", inserts(1)), Error)
    await old.close()
    await new.close()


async def test_tool_calls_count_against_the_plan(hub: Any, hub_url: str, tenant: Any) -> None:
    _, key = tenant
    enable_limits(hub, plans={Plan.FREE: 2})
    raw = await Raw.connect(hub_url, key)
    digest = "0" * 64
    for _ in range(2):
        await raw.send(ToolCall(id=raw.next_id(), tool="search", args_digest=digest))
        assert not isinstance(await raw.recv(), Error)
    await raw.send(ToolCall(id=raw.next_id(), tool="search", args_digest=digest))
    refused = await raw.recv()
    assert isinstance(refused, Error) and refused.code == "rate_limited"
    await raw.close()


async def test_repeated_failed_handshakes_from_one_address_get_429(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    _, key = tenant
    clock = enable_limits(hub, auth_failures=3)
    bad = "ht_live_" + "a" * 16 + "_" + "b" * 49

    async def status(credential: str) -> int:
        try:
            async with connect(
                hub_url, additional_headers={"Authorization": f"Bearer {credential}"}
            ):
                return 101
        except InvalidStatus as exc:
            assert exc.response.headers["X-Frame-Options"] == "DENY"
            return exc.response.status_code

    assert [await status(bad) for _ in range(4)] == [401] * 4  # the 4th goes over
    assert await status(bad) == http.HTTPStatus.TOO_MANY_REQUESTS
    assert await status(key) == 429  # blocked before the key store is read
    clock.t += 61
    assert await status(key) == 101


def test_failed_handshake_state_is_bounded() -> None:
    admission = Admission(MemoryRateLimiter())
    admission.settings.auth_failures = 1
    admission.clock = FakeClock()
    for i in range(3 * MAX_PREAUTH_KEYS):
        ip = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        admission.auth_failure_hook("unknown", ip, None)
        admission.auth_failure_hook("unknown", ip, None)
    assert len(admission.preauth) <= MAX_PREAUTH_KEYS  # type: ignore[arg-type]
    assert len(admission._blocked) <= MAX_PREAUTH_KEYS


async def test_limits_are_shared_through_redis(tmp_path: Any, redis_url: str) -> None:
    from server.app import HypertabServer
    from server.config import Config

    servers = [
        HypertabServer(Config(data_dir=tmp_path / "data", port=0, redis_url=redis_url))
        for _ in range(2)
    ]
    for server in servers:
        await server.start()
    try:
        _, issued = await servers[0].services.lifecycle.create_tenant("r", now=time.time())
        clocks = [enable_limits(s, plans={Plan.FREE: 3}) for s in servers]
        for c in clocks:
            c.t = time.time()
        assert isinstance(servers[0].admission.limiter, RedisRateLimiter)
        one = await Raw.connect(f"ws://127.0.0.1:{servers[0].port}/v1/ws", issued.secret)
        two = await Raw.connect(f"ws://127.0.0.1:{servers[1].port}/v1/ws", issued.secret)
        digest = "1" * 64
        for _ in range(3):  # the budget, spent on the first node
            await one.send(ToolCall(id=one.next_id(), tool="t", args_digest=digest))
            assert not isinstance(await one.recv(), Error)
        await two.send(ToolCall(id=two.next_id(), tool="t", args_digest=digest))
        refused = await two.recv()  # ... is spent on the second node too
        assert isinstance(refused, Error) and refused.code == "rate_limited"
        await one.close()
        await two.close()
    finally:
        for server in servers:
            await server.stop()
