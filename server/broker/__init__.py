"""Change and presence broadcast between hub processes (memory alone, Redis for many)."""

from __future__ import annotations

from server.broker.base import Broker


def broker_for(redis_url: str | None) -> Broker:
    """The broker a hub process uses: Redis when a URL is set, else in-process memory."""
    if redis_url:
        from server.broker.redis_broker import RedisBroker

        return RedisBroker.from_url(redis_url)
    from server.broker.memory import MemoryBroker

    return MemoryBroker()
