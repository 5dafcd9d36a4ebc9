"""The in-process broker: nodes sharing one :class:`MemoryMedium` object.

A hub alone gets a medium of its own, so publishing costs a dictionary lookup and reaches
no one. Several in-process nodes (the contract tests) share one medium; deliveries are
scheduled with ``call_soon``, which keeps publish order and never runs a receiver inside
the publisher's call.
"""

from __future__ import annotations

import asyncio
import uuid

import msgspec

from server.broker.base import Deliver, Envelope, Resync


class MemoryMedium:
    """What in-process nodes share: who follows which (tenant, table)."""

    def __init__(self) -> None:
        self.followers: dict[tuple[str, str], dict[str, Deliver]] = {}
        self.nodes = 0
        """Started nodes on this medium."""


class MemoryBroker:
    """A :class:`~server.broker.base.Broker` inside one process."""

    def __init__(self, medium: MemoryMedium | None = None) -> None:
        self.node = uuid.uuid4().hex
        self.dropped = 0
        """Always 0: an in-process medium loses nothing."""
        self._medium = medium if medium is not None else MemoryMedium()
        self._deliver: Deliver | None = None
        self._keys: set[tuple[str, str]] = set()

    async def start(self, deliver: Deliver, resync: Resync) -> None:
        """Begin receiving (a memory medium never loses an envelope: ``resync`` unused)."""
        if self._deliver is None:
            self._medium.nodes += 1
        self._deliver = deliver

    def publish(self, envelope: Envelope) -> None:
        """Schedule delivery to every other node following the envelope's table."""
        followers = self._medium.followers.get((envelope.tenant, envelope.table))
        if not followers:
            return
        stamped = msgspec.structs.replace(envelope, origin=self.node)
        loop = asyncio.get_running_loop()
        for node, deliver in followers.items():
            if node != self.node:
                loop.call_soon(deliver, stamped)

    async def subscribe(self, tenant: str, table: str) -> None:
        """Follow a table."""
        if self._deliver is None:
            raise RuntimeError("broker not started")
        self._keys.add((tenant, table))
        self._medium.followers.setdefault((tenant, table), {})[self.node] = self._deliver

    def unsubscribe(self, tenant: str, table: str) -> None:
        """Stop following a table (idempotent)."""
        self._keys.discard((tenant, table))
        followers = self._medium.followers.get((tenant, table))
        if followers is not None:
            followers.pop(self.node, None)
            if not followers:
                del self._medium.followers[(tenant, table)]

    @property
    def has_peers(self) -> bool:
        """Whether another started node shares this medium."""
        return self._medium.nodes > 1

    @property
    def healthy(self) -> bool:
        """Always: nothing outside the process can fail."""
        return True

    async def close(self) -> None:
        """Stop following everything (idempotent)."""
        for tenant, table in list(self._keys):
            self.unsubscribe(tenant, table)
        if self._deliver is not None:
            self._medium.nodes -= 1
        self._deliver = None
