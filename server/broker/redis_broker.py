"""The Redis broker: pub/sub, one channel per (tenant, table), one subscriber connection.

How it works: every followed table is a channel ``<prefix>:<tenant>:<table>``; a node also
holds a channel of its own (``<prefix>:node:<id>``) so its one pub/sub connection exists,
and is known to work, before anyone subscribes. :meth:`RedisBroker.subscribe` returns once
Redis confirmed the channel (or, while Redis is down, after ``confirm_timeout``: the resync
after reconnecting covers that table). Publishing goes through one sender task that drains
its queue into one pipeline per round, so envelopes leave in publish order and a burst of
commits costs one round trip. A lost connection is re-opened with backoff; every channel is
subscribed again and ``resync`` tells the node to look for versions it missed. An envelope
that could not be sent is dropped (and counted): receivers fill the gap from the op log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.broker.base import BrokerError, Deliver, Envelope, Resync

log = logging.getLogger(__name__)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Envelope)

MAX_BATCH = 256
"""Most envelopes in one pipeline."""


class RedisBroker:
    """A :class:`~server.broker.base.Broker` over Redis pub/sub."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "hypertab:changes",
        start_timeout: float = 10.0,
        confirm_timeout: float = 2.0,
        max_backoff: float = 2.0,
    ) -> None:
        self.node = uuid.uuid4().hex
        self._client = client
        self._prefix = prefix
        self._start_timeout = start_timeout
        self._confirm_timeout = confirm_timeout
        self._max_backoff = max_backoff
        self._owns_client = False
        self._deliver: Deliver | None = None
        self._resync: Resync | None = None
        self._channels: dict[str, tuple[str, str]] = {}
        self._confirming: dict[str, asyncio.Future[None]] = {}
        self._pubsub: aioredis.client.PubSub | None = None
        self._connected = asyncio.Event()
        self._outbox: asyncio.Queue[Envelope | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._send_failing = False
        self._closed = False
        self.dropped = 0
        """Envelopes that could not be sent (their receivers filled them from the op log)."""

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "hypertab:changes") -> RedisBroker:
        """A broker with its own Redis client for ``url`` (closed with the broker)."""
        client = aioredis.Redis.from_url(url, health_check_interval=15, socket_keepalive=True)
        broker = cls(client, prefix=prefix)
        broker._owns_client = True
        return broker

    def _channel(self, tenant: str, table: str) -> str:
        return f"{self._prefix}:{tenant}:{table}"

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self, deliver: Deliver, resync: Resync) -> None:
        """Open the pub/sub connection; :class:`BrokerError` if Redis does not answer."""
        self._deliver, self._resync = deliver, resync
        self._reader = asyncio.create_task(self._read(), name="broker-redis-read")
        self._sender = asyncio.create_task(self._send(), name="broker-redis-send")
        waiter = asyncio.ensure_future(self._connected.wait())
        done, _ = await asyncio.wait(
            {waiter, self._reader}, timeout=self._start_timeout, return_when="FIRST_COMPLETED"
        )
        if waiter not in done:
            waiter.cancel()
            await self.close()
            raise BrokerError(
                "could not reach Redis (HYPERTAB_REDIS_URL) for change broadcasts within "
                f"{self._start_timeout:g} s"
            )

    async def close(self) -> None:
        """Flush queued envelopes (briefly), stop both tasks (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._sender is not None:
            self._outbox.put_nowait(None)
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._sender, 2.0)
        for task in (self._reader, self._sender):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for future in self._confirming.values():
            if not future.done():
                future.cancel()
        if self._owns_client:
            self._owns_client = False
            await self._client.aclose()

    @property
    def has_peers(self) -> bool:
        """Always: other processes may share this Redis."""
        return True

    @property
    def healthy(self) -> bool:
        """The subscriber connection is up and the last publish went through."""
        return self._connected.is_set() and not self._send_failing

    # --- following tables ---------------------------------------------------------------

    async def subscribe(self, tenant: str, table: str) -> None:
        """Follow a table; returns once Redis confirmed it (or after ``confirm_timeout``)."""
        if self._closed or self._deliver is None:
            raise RuntimeError("broker not running")
        channel = self._channel(tenant, table)
        if channel in self._channels:
            return
        self._channels[channel] = (tenant, table)
        future = self._confirming.get(channel)
        if future is None or future.done():
            future = self._confirming[channel] = asyncio.get_running_loop().create_future()
        pubsub = self._pubsub
        if pubsub is not None and self._connected.is_set():
            with contextlib.suppress(RedisError, OSError):  # the reconnect subscribes it
                await pubsub.subscribe(channel)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), self._confirm_timeout)

    def unsubscribe(self, tenant: str, table: str) -> None:
        """Stop following a table (idempotent)."""
        channel = self._channel(tenant, table)
        if self._channels.pop(channel, None) is None:
            return
        future = self._confirming.pop(channel, None)
        if future is not None and not future.done():
            future.cancel()
        pubsub = self._pubsub
        if pubsub is not None and self._connected.is_set():
            task = asyncio.get_running_loop().create_task(self._unsubscribe(pubsub, channel))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _unsubscribe(self, pubsub: aioredis.client.PubSub, channel: str) -> None:
        if channel not in self._channels:  # not followed again meanwhile
            await pubsub.unsubscribe(channel)

    # --- receiving ----------------------------------------------------------------------

    async def _read(self) -> None:
        backoff = 0.05
        first = True
        own = f"{self._prefix}:node:{self.node}"
        while not self._stopping():
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(own, *self._channels)
                self._pubsub = pubsub
                async for message in _messages(pubsub):
                    kind = message.get("type")
                    if kind == "subscribe":
                        self._confirmed(_text(message.get("channel")), own, first)
                    elif kind == "message":
                        self._handle(message.get("data"))
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if self._connected.is_set():
                    log.warning("broker: Redis connection lost (%s)", type(exc).__name__)
            finally:
                self._pubsub = None
                if self._connected.is_set():
                    backoff = 0.05  # it worked for a while: retry soon
                self._connected.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # untyped in older redis-py
            first = False
            if self._stopping():
                break
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    def _stopping(self) -> bool:
        return self._closed

    def _confirmed(self, channel: str, own: str, first: bool) -> None:
        if channel == own:
            self._connected.set()
            if not first:
                log.warning("broker: reconnected to Redis; catching up from the op log")
                if self._resync is not None:
                    self._resync()
            return
        future = self._confirming.pop(channel, None)
        if future is not None and not future.done():
            future.set_result(None)

    def _handle(self, data: Any) -> None:
        try:
            envelope = _decoder.decode(data)
        except (msgspec.DecodeError, TypeError):
            log.warning("broker: ignored a malformed message")  # never log the payload
            return
        if envelope.origin == self.node or self._deliver is None:
            return  # our own echo: delivered locally before it was published
        if self._channel(envelope.tenant, envelope.table) not in self._channels:
            return  # unsubscribed while it was in flight
        self._deliver(envelope)

    # --- sending ------------------------------------------------------------------------

    def publish(self, envelope: Envelope) -> None:
        """Queue ``envelope`` for the sender task (never blocks, never raises)."""
        if not self._closed:
            self._outbox.put_nowait(msgspec.structs.replace(envelope, origin=self.node))

    async def _send(self) -> None:
        queue = self._outbox
        while True:
            first = await queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while not queue.empty() and len(batch) < MAX_BATCH:
                item = queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for envelope in batch:
                        pipe.publish(self._channel(envelope.tenant, envelope.table),
                                     _encoder.encode(envelope))  # fmt: skip
                    await pipe.execute()
                self._send_failing = False
            except (RedisError, OSError) as exc:
                self.dropped += len(batch)
                if not self._send_failing:
                    log.warning(
                        "broker: publishing to Redis failed (%s); subscribers on other "
                        "processes catch up from the op log",
                        type(exc).__name__,
                    )
                self._send_failing = True
            if stop:
                return


async def _messages(pubsub: aioredis.client.PubSub) -> Any:
    while True:
        message = await pubsub.get_message(timeout=5.0)
        if message is not None:
            yield message


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
