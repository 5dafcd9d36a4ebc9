"""One contract for every Broker: memory (nodes in one process) and Redis (real server)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from server.broker.base import Broker, Envelope, EnvelopeKind
from server.broker.memory import MemoryBroker, MemoryMedium
from server.broker.redis_broker import RedisBroker

WAIT = 5.0  # generous: delivery is normally well under a millisecond


class Node:
    """A started broker and what it received."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.got: list[Envelope] = []
        self.resyncs = 0
        self._changed = asyncio.Event()

    def deliver(self, envelope: Envelope) -> None:
        self.got.append(envelope)
        self._changed.set()

    def resync(self) -> None:
        self.resyncs += 1

    async def wait_for(self, count: int) -> list[Envelope]:
        async with asyncio.timeout(WAIT):
            while len(self.got) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.got


NodeFactory = Callable[[], Awaitable[Node]]


@pytest.fixture(params=["memory", "redis"])
async def make_node(request: pytest.FixtureRequest) -> AsyncIterator[NodeFactory]:
    """Factory of started nodes sharing one medium (one memory medium / one Redis)."""
    nodes: list[Node] = []
    if request.param == "memory":
        medium = MemoryMedium()

        def new() -> Broker:
            return MemoryBroker(medium)

    else:
        url = request.getfixturevalue("redis_url")
        prefix = f"test:changes:{uuid.uuid4().hex}"

        def new() -> Broker:
            return RedisBroker.from_url(url, prefix=prefix)

    async def factory() -> Node:
        node = Node(new())
        await node.broker.start(node.deliver, node.resync)
        nodes.append(node)
        return node

    yield factory
    for node in nodes:
        await node.broker.close()


def change(version: int, table: str = "tbl1", tenant: str = "tenant0001") -> Envelope:
    return Envelope(EnvelopeKind.CHANGES, tenant, table, version, version, f"v{version}".encode())


async def settle() -> None:
    """Long enough for a stray delivery to show up (memory and a local Redis)."""
    await asyncio.sleep(0.2)


async def test_follower_gets_every_envelope_in_publish_order(make_node: NodeFactory) -> None:
    publisher, follower = await make_node(), await make_node()
    await follower.broker.subscribe("tenant0001", "tbl1")
    for version in range(1, 51):
        publisher.broker.publish(change(version))
    got = await follower.wait_for(50)
    assert [e.first for e in got] == list(range(1, 51))
    assert got[0].payload == b"v1" and got[0].kind is EnvelopeKind.CHANGES
    assert {e.origin for e in got} == {publisher.broker.node}
    assert publisher.broker.node != follower.broker.node


async def test_publisher_never_gets_its_own_envelopes(make_node: NodeFactory) -> None:
    publisher, follower = await make_node(), await make_node()
    await publisher.broker.subscribe("tenant0001", "tbl1")
    await follower.broker.subscribe("tenant0001", "tbl1")
    publisher.broker.publish(change(1))
    await follower.wait_for(1)
    await settle()
    assert publisher.got == []


async def test_only_followers_of_that_tenant_and_table_receive(make_node: NodeFactory) -> None:
    publisher, other_table, other_tenant, idle = [await make_node() for _ in range(4)]
    await other_table.broker.subscribe("tenant0001", "tbl2")
    await other_tenant.broker.subscribe("tenant0002", "tbl1")
    publisher.broker.publish(change(1))
    publisher.broker.publish(change(1, table="tbl2"))
    assert [(e.tenant, e.table) for e in await other_table.wait_for(1)] == [("tenant0001", "tbl2")]
    await settle()
    assert other_tenant.got == [] and idle.got == []
    assert len(other_table.got) == 1


async def test_unsubscribe_stops_delivery_and_subscribe_resumes(make_node: NodeFactory) -> None:
    publisher, follower = await make_node(), await make_node()
    await follower.broker.subscribe("tenant0001", "tbl1")
    publisher.broker.publish(change(1))
    await follower.wait_for(1)
    follower.broker.unsubscribe("tenant0001", "tbl1")
    follower.broker.unsubscribe("tenant0001", "tbl1")  # idempotent
    await settle()  # the unsubscribe reached the medium
    publisher.broker.publish(change(2))
    await settle()
    assert [e.first for e in follower.got] == [1]
    await follower.broker.subscribe("tenant0001", "tbl1")
    publisher.broker.publish(change(3))
    assert [e.first for e in await follower.wait_for(2)] == [1, 3]


async def test_presence_envelopes_travel_like_changes(make_node: NodeFactory) -> None:
    publisher, follower = await make_node(), await make_node()
    await follower.broker.subscribe("tenant0001", "tbl1")
    publisher.broker.publish(Envelope(EnvelopeKind.PRESENCE, "tenant0001", "tbl1", 0, 0, b"cursor"))
    (got,) = await follower.wait_for(1)
    assert got.kind is EnvelopeKind.PRESENCE and got.payload == b"cursor"


async def test_healthy_when_started_and_publish_after_close_is_harmless(
    make_node: NodeFactory,
) -> None:
    node = await make_node()
    assert node.broker.healthy
    other = await make_node()
    assert node.broker.has_peers and other.broker.has_peers
    await node.broker.close()
    await node.broker.close()  # idempotent
    node.broker.publish(change(1))  # never raises: a lost broadcast is filled from the op log


async def test_a_lone_memory_node_has_no_peers() -> None:
    broker = MemoryBroker()
    await broker.start(lambda envelope: None, lambda: None)
    assert not broker.has_peers  # a hub alone skips encoding envelopes
    await broker.close()
