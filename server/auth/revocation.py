"""The revocation bus: tells every hub process at once that credentials stopped being valid.

How it works
------------
Whoever revokes (the control plane, in this process or, through the control-db watcher,
in another one) publishes a :class:`RevocationEvent`. Each hub process subscribes once
with a callback and closes the matching sockets with ``CREDENTIAL_REVOKED`` (4003).

* :class:`MemoryRevocationBus`: one process. Delivery is synchronous within ``publish``.
* :class:`RedisRevocationBus`: many processes/hosts through Redis pub/sub. Local
  subscribers get the event directly, others through Redis. A background
  task holds the subscription and reconnects after a Redis blip. Pub/sub is at most once:
  events published while the subscriber was away are lost, so after every reconnect the
  bus delivers a local ``RESYNC`` event, on which the hub re-checks every open connection
  (``ControlPlane.credential_is_live``).

Events are idempotent (closing an already closed socket is a no-op), so a duplicate, e.g.
the same revocation seen both directly and through the watcher, is harmless.

Callbacks run on the event loop and must not block: they only schedule closes. An exception
in one callback is logged and does not stop delivery to the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from server.auth.principal import TenantId

if TYPE_CHECKING:
    # Imported when a Redis bus is made: the embedded default never loads redis (~10 MB).
    import redis.asyncio as aioredis

log = logging.getLogger(__name__)


class RevocationKind(enum.StrEnum):
    """What stopped being valid."""

    CREDENTIAL = "credential"  # one credential (API key id, or jwt:<tenant>:<sub>)
    TENANT = "tenant"  # every credential of a tenant (tenant deleted or all keys revoked)
    GRANTS = "grants"  # one API key's grants were narrowed: re-read them, narrow its sockets
    RESYNC = "resync"  # local only: events may have been lost; re-check every connection


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    """One revocation. ``credential_id`` is set for ``CREDENTIAL`` and ``GRANTS`` events.

    ``reason`` is a short audit word (``revoked``, ``rotated``, ``tenant_deleted``, ...).
    """

    kind: RevocationKind
    tenant: TenantId | None = None
    credential_id: str | None = None
    reason: str = "revoked"
    at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "kind": self.kind.value,
            "tenant": self.tenant,
            "credential_id": self.credential_id,
            "reason": self.reason,
            "at": self.at,
        }

    def to_json(self) -> str:
        """The wire form used on Redis."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> RevocationEvent:
        """Parse the wire form; ``ValueError`` on anything malformed."""
        return cls.from_dict(json.loads(raw))

    @classmethod
    def from_dict(cls, data: Any) -> RevocationEvent:
        """Build from decoded JSON; ``ValueError`` on anything malformed."""
        if not isinstance(data, dict):
            raise ValueError("revocation event must be an object")
        kind = RevocationKind(str(data.get("kind")))
        if kind is RevocationKind.RESYNC:
            raise ValueError("resync events are local only")
        tenant, credential_id = data.get("tenant"), data.get("credential_id")
        reason, at = data.get("reason", "revoked"), data.get("at", 0.0)
        if tenant is not None and not isinstance(tenant, str):
            raise ValueError("tenant must be a string")
        if credential_id is not None and not isinstance(credential_id, str):
            raise ValueError("credential_id must be a string")
        if kind in (RevocationKind.CREDENTIAL, RevocationKind.GRANTS) and credential_id is None:
            raise ValueError("credential events need a credential_id")
        if kind is RevocationKind.TENANT and tenant is None:
            raise ValueError("tenant events need a tenant")
        if not isinstance(reason, str) or not isinstance(at, int | float):
            raise ValueError("bad reason or at")
        return cls(
            kind=kind,
            tenant=TenantId(tenant) if tenant is not None else None,
            credential_id=credential_id,
            reason=reason,
            at=float(at),
        )


RevocationCallback = Callable[[RevocationEvent], None]


class Subscription(Protocol):
    """A live subscription; ``close()`` stops delivery to its callback (idempotent)."""

    def close(self) -> None:
        """Stop delivering to this subscription's callback."""


class RevocationBus(Protocol):
    """Fan-out of revocation events to every subscribed process (contract: tests/auth)."""

    async def publish(self, event: RevocationEvent) -> None:
        """Deliver ``event`` to every subscriber, in this process and (if shared) others."""

    async def subscribe(self, callback: RevocationCallback) -> Subscription:
        """Register ``callback``; every event published after this returns reaches it."""

    async def close(self) -> None:
        """Stop delivering and release resources (idempotent)."""


class _Callbacks:
    """The local subscriber list shared by both buses."""

    def __init__(self) -> None:
        self._callbacks: dict[int, RevocationCallback] = {}
        self._next = 0

    def add(self, callback: RevocationCallback) -> _LocalSubscription:
        self._next += 1
        self._callbacks[self._next] = callback
        return _LocalSubscription(self, self._next)

    def remove(self, token: int) -> None:
        self._callbacks.pop(token, None)

    def clear(self) -> None:
        self._callbacks.clear()

    def deliver(self, event: RevocationEvent) -> None:
        for callback in list(self._callbacks.values()):
            try:
                callback(event)
            except Exception:
                # One broken subscriber must not stop revocations reaching the others.
                log.exception("revocation callback failed (kind=%s)", event.kind.value)


class _LocalSubscription:
    def __init__(self, owner: _Callbacks, token: int) -> None:
        self._owner = owner
        self._token = token

    def close(self) -> None:
        self._owner.remove(self._token)


class MemoryRevocationBus:
    """In-process bus: ``publish`` calls every subscriber before returning."""

    def __init__(self) -> None:
        self._callbacks = _Callbacks()
        self._closed = False

    async def publish(self, event: RevocationEvent) -> None:
        """Deliver ``event`` to every local subscriber."""
        if not self._closed:
            self._callbacks.deliver(event)

    async def subscribe(self, callback: RevocationCallback) -> Subscription:
        """Register ``callback``."""
        return self._callbacks.add(callback)

    async def close(self) -> None:
        """Drop every subscriber (idempotent)."""
        self._closed = True
        self._callbacks.clear()


class RedisRevocationBus:
    """Bus over Redis pub/sub, for several hub processes or hosts.

    ``publish`` delivers to this process's subscribers first, then sends to Redis tagged with
    this bus's origin id (its own echo is ignored): a local revocation closes local sockets
    even while Redis is down.

    One pub/sub connection per bus object serves all local subscribers. It is opened by the
    first :meth:`subscribe` (which returns only once Redis confirmed the subscription) and
    re-opened with backoff after any connection failure; each successful re-subscription
    delivers a local ``RESYNC`` event.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        channel: str = "hypertab:revocations",
        max_backoff: float = 2.0,
        subscribe_timeout: float = 10.0,
    ) -> None:
        self._client = client
        self._channel = channel
        self._max_backoff = max_backoff
        self._subscribe_timeout = subscribe_timeout
        self._callbacks = _Callbacks()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closed = False
        self._owns_client = False
        self._origin = uuid.uuid4().hex

    @classmethod
    def from_url(cls, url: str, *, channel: str = "hypertab:revocations") -> RedisRevocationBus:
        """A bus with its own Redis client for ``url``; closed with the bus.

        The client pings an idle subscription every 15 s, so a connection that died
        silently (no RST) is noticed and re-opened rather than waited on forever.
        """
        import redis.asyncio as aioredis  # only multi-process deployments load redis

        client = aioredis.Redis.from_url(url, health_check_interval=15, socket_keepalive=True)
        bus = cls(client, channel=channel)
        bus._owns_client = True
        return bus

    async def publish(self, event: RevocationEvent) -> None:
        """Publish ``event`` to every process subscribed to the channel (this one included)."""
        if event.kind is RevocationKind.RESYNC:
            raise ValueError("resync events are local only")
        self._callbacks.deliver(event)
        payload = {**event.to_dict(), "origin": self._origin}
        await self._client.publish(self._channel, json.dumps(payload, separators=(",", ":")))

    async def subscribe(self, callback: RevocationCallback) -> Subscription:
        """Register ``callback``; waits until the Redis subscription is confirmed.

        Raises :class:`TimeoutError` when Redis cannot be reached within
        ``subscribe_timeout`` the first time (a hub should not start believing it will hear
        revocations when it will not). Once subscribed, later outages are handled by
        reconnecting and a ``RESYNC`` event.
        """
        if self._closed:
            raise RuntimeError("bus is closed")
        subscription = self._callbacks.add(callback)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="revocation-bus-redis")
        waiter = asyncio.ensure_future(self._ready.wait())
        done, _ = await asyncio.wait(
            {waiter, self._task},
            timeout=self._subscribe_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if waiter not in done:
            waiter.cancel()
            subscription.close()
            if self._task in done:
                self._task.result()  # re-raise what killed the subscriber task
                raise RuntimeError("revocation subscriber stopped")
            raise TimeoutError("could not subscribe to Redis revocation channel")
        return subscription

    async def close(self) -> None:
        """Stop the subscriber task and drop subscribers (idempotent)."""
        self._closed = True
        self._callbacks.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._owns_client:
            self._owns_client = False
            await self._client.aclose()

    async def _run(self) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        backoff = 0.05
        first = True
        while not self._stopping():
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                # Wait for Redis's confirmation so that subscribe() keeps its promise.
                while True:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is not None and msg.get("type") == "subscribe":
                        break
                backoff = 0.05
                self._ready.set()
                if not first:
                    log.warning("revocation bus: reconnected to Redis; requesting resync")
                    self._callbacks.deliver(RevocationEvent(kind=RevocationKind.RESYNC))
                first = False
                async for message in self._messages(pubsub):
                    self._handle(message)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning(
                    "revocation bus: Redis connection lost (%s); retrying in %.2fs",
                    type(exc).__name__,
                    backoff,
                )
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # untyped in older redis-py
            if self._stopping():
                break
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    def _stopping(self) -> bool:
        return self._closed

    @staticmethod
    async def _messages(pubsub: aioredis.client.PubSub) -> AsyncIterator[dict[str, Any]]:
        while True:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
            if msg is not None:
                yield msg

    def _handle(self, message: dict[str, Any]) -> None:
        if message.get("type") != "message":
            return
        try:
            data = json.loads(message["data"])
            if isinstance(data, dict) and data.get("origin") == self._origin:
                return  # already delivered locally by publish()
            event = RevocationEvent.from_dict(data)
        except (ValueError, KeyError, TypeError):
            # Never log the payload: it is untrusted and could be anything.
            log.warning("revocation bus: ignored a malformed message")
            return
        self._callbacks.deliver(event)


@contextlib.asynccontextmanager
async def revocation_events(bus: RevocationBus) -> AsyncIterator[AsyncIterator[RevocationEvent]]:
    """Subscribe ``bus`` for the duration of the block and iterate its events::

    async with revocation_events(bus) as events:
        async for event in events:
            ...
    """
    queue: asyncio.Queue[RevocationEvent] = asyncio.Queue()
    subscription = await bus.subscribe(queue.put_nowait)

    async def iterate() -> AsyncIterator[RevocationEvent]:
        while True:
            yield await queue.get()

    try:
        yield iterate()
    finally:
        subscription.close()
