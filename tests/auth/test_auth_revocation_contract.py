"""One contract for every RevocationBus: memory (in process) and Redis (real redis-server)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from server.auth.principal import TenantId
from server.auth.revocation import (
    MemoryRevocationBus,
    RedisRevocationBus,
    RevocationBus,
    RevocationEvent,
    RevocationKind,
    revocation_events,
)

WAIT = 5.0  # generous: delivery is normally well under a millisecond

BusFactory = Callable[[], RevocationBus]


def _event(credential: str = "abcdefghij012345") -> RevocationEvent:
    return RevocationEvent(
        kind=RevocationKind.CREDENTIAL,
        tenant=TenantId("tenant0000000001"),
        credential_id=credential,
        reason="revoked",
        at=123.5,
    )


@pytest.fixture(params=["memory", "redis"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    """Factory of buses sharing one medium (same memory bus object / same Redis channel)."""
    buses: list[RevocationBus] = []
    if request.param == "memory":
        shared = MemoryRevocationBus()
        buses.append(shared)

        def factory() -> RevocationBus:
            return shared

    else:
        url = request.getfixturevalue("redis_url")
        channel = f"test:revocations:{uuid.uuid4().hex}"

        def factory() -> RevocationBus:
            bus = RedisRevocationBus.from_url(url, channel=channel)
            buses.append(bus)
            return bus

    yield factory
    for bus in buses:
        await bus.close()


class Inbox:
    """Collects events from a callback and lets a test wait for them."""

    def __init__(self) -> None:
        self.events: list[RevocationEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: RevocationEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, count: int) -> list[RevocationEvent]:
        await self.wait_until(lambda: len(self.real()) >= count)
        return self.real()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    def real(self) -> list[RevocationEvent]:
        return [e for e in self.events if e.kind is not RevocationKind.RESYNC]


async def test_subscriber_receives_published_event(make_bus: BusFactory) -> None:
    bus = make_bus()
    inbox = Inbox()
    await bus.subscribe(inbox)
    await bus.publish(_event())
    assert await inbox.wait_for(1) == [_event()]


async def test_event_reaches_every_subscriber_of_every_process(make_bus: BusFactory) -> None:
    publisher, listener = make_bus(), make_bus()
    a, b = Inbox(), Inbox()
    await publisher.subscribe(a)
    await listener.subscribe(b)
    tenant_event = RevocationEvent(
        kind=RevocationKind.TENANT, tenant=TenantId("tenant0000000001"), reason="tenant_deleted"
    )
    await publisher.publish(_event("k1"))
    await publisher.publish(tenant_event)
    assert await a.wait_for(2) == [_event("k1"), tenant_event]
    assert await b.wait_for(2) == [_event("k1"), tenant_event]


async def test_closed_subscription_stops_receiving(make_bus: BusFactory) -> None:
    bus = make_bus()
    gone, staying = Inbox(), Inbox()
    subscription = await bus.subscribe(gone)
    await bus.subscribe(staying)
    subscription.close()
    subscription.close()  # idempotent
    await bus.publish(_event())
    await staying.wait_for(1)
    assert gone.real() == []


async def test_failing_callback_does_not_block_others(make_bus: BusFactory) -> None:
    bus = make_bus()

    def broken(event: RevocationEvent) -> None:
        raise RuntimeError("boom")

    inbox = Inbox()
    await bus.subscribe(broken)
    await bus.subscribe(inbox)
    await bus.publish(_event("k1"))
    await bus.publish(_event("k2"))
    assert [e.credential_id for e in await inbox.wait_for(2)] == ["k1", "k2"]


async def test_async_iterator_api(make_bus: BusFactory) -> None:
    bus = make_bus()
    async with revocation_events(bus) as events:
        await bus.publish(_event())
        async with asyncio.timeout(WAIT):
            received = await anext(aiter(events))
    assert received == _event()


async def test_close_is_idempotent(make_bus: BusFactory) -> None:
    bus = make_bus()
    await bus.subscribe(Inbox())
    await bus.close()
    await bus.close()


# -- Redis specifics ---------------------------------------------------------------------------


async def test_redis_subscriber_reconnects_after_blip(redis_url: str) -> None:
    channel = f"test:revocations:{uuid.uuid4().hex}"
    bus = RedisRevocationBus.from_url(redis_url, channel=channel)
    admin = aioredis.Redis.from_url(redis_url)
    try:
        inbox = Inbox()
        await bus.subscribe(inbox)
        killed = await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        assert killed >= 1
        # After reconnecting, the bus tells the hub to re-check (events may have been lost).
        await inbox.wait_until(lambda: any(e.kind is RevocationKind.RESYNC for e in inbox.events))
        await admin.publish(channel, _event().to_json())
        assert await inbox.wait_for(1) == [_event()]
    finally:
        await bus.close()
        await admin.aclose()


async def test_redis_ignores_malformed_messages(redis_url: str) -> None:
    channel = f"test:revocations:{uuid.uuid4().hex}"
    bus = RedisRevocationBus.from_url(redis_url, channel=channel)
    admin = aioredis.Redis.from_url(redis_url)
    try:
        inbox = Inbox()
        await bus.subscribe(inbox)
        for junk in ("not json", "[]", '{"kind":"credential"}', '{"kind":"resync"}'):
            await admin.publish(channel, junk)
        await admin.publish(channel, _event().to_json())
        assert await inbox.wait_for(1) == [_event()]
    finally:
        await bus.close()
        await admin.aclose()


async def test_resync_is_never_sent_over_redis(redis_url: str) -> None:
    bus = RedisRevocationBus.from_url(redis_url)
    try:
        with pytest.raises(ValueError):
            await bus.publish(RevocationEvent(kind=RevocationKind.RESYNC))
    finally:
        await bus.close()


def test_event_wire_round_trip() -> None:
    assert RevocationEvent.from_json(_event().to_json()) == _event()
    with pytest.raises(ValueError):
        RevocationEvent.from_json('{"kind": "tenant"}')


async def test_redis_unreachable_at_start_times_out() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
    bus = RedisRevocationBus(client, subscribe_timeout=0.3)
    try:
        with pytest.raises(TimeoutError):
            await bus.subscribe(Inbox())
    finally:
        await bus.close()
        await client.aclose()


async def test_redis_local_delivery_is_direct_and_not_echoed(redis_url: str) -> None:
    channel = f"test:revocations:{uuid.uuid4().hex}"
    a = RedisRevocationBus.from_url(redis_url, channel=channel)
    b = RedisRevocationBus.from_url(redis_url, channel=channel)
    try:
        inbox = Inbox()
        await a.subscribe(inbox)
        await a.publish(_event("mine"))
        assert [e.credential_id for e in inbox.real()] == ["mine"]  # before any round trip
        # Redis keeps order on a channel: had our own echo come back, it would precede this.
        await b.publish(_event("marker"))
        await inbox.wait_for(2)
        assert [e.credential_id for e in inbox.real()] == ["mine", "marker"]
    finally:
        await a.close()
        await b.close()
