"""One client connection: the asyncio shell around the session's rules.

The rules live in :class:`~server.hub.session_core.SessionCore` (Sans-I/O: decoding, the
bad-frame limit, authorization, the answers to commits and presence). This shell only moves
bytes: it reads frames and hands them to the core, charges what the core admits against the
rate limits (``admit``), runs the message's handler (``Services.handlers``, as its row of
``server/hub/messages.py`` names it; ``server/hub/tables.py`` for the session's own
messages), and performs the core's actions (send a message, close). Handlers do the I/O:
the store, the fan-out hub, paced writes of large answers.

Batches are not awaited in the read loop: the next message is read while the previous batch
waits for its group commit, and the ack is written from the commit's callback. That is what
lets a client pipeline edits and the store commit them together.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from protocol.codec import Codec
from protocol.limits import MAX_FRAME_BYTES, MAX_OPS_PER_BATCH
from protocol.messages import ClientMessage, Error, ServerLimits
from server.auth.principal import Principal
from server.hub.connection import HubConnection
from server.hub.fanout import Hub, Subscriber
from server.hub.logcontext import connection_fields
from server.hub.outbox import Outbox
from server.hub.services import Services
from server.hub.session_core import MAX_BAD_FRAMES as MAX_BAD_FRAMES  # its former home
from server.hub.session_core import Send, SessionCore
from server.store.manager import StoreManager
from server.store.tenant import StoreError

log = logging.getLogger(__name__)

Admit = Callable[["Session", ClientMessage], Awaitable["Error | None"]]
"""Admission control (rate limits, server/hub/admission.py) awaited before a message is
handled; None admits it."""


class Session:
    """One authenticated connection: its socket, its rules (``core``), its outbox."""

    # Slots: one Session per connection, 10,000 connections per process.
    __slots__ = (
        "__weakref__",
        "admit",
        "codec",
        "conn",
        "core",
        "hub",
        "id",
        "limits",
        "outbox",
        "services",
        "stores",
    )

    def __init__(
        self,
        conn: HubConnection,
        principal: Principal,
        codec: Codec,
        services: Services,
        *,
        limits: ServerLimits,
        admit: Admit | None = None,
    ) -> None:
        self.conn = conn
        self.codec = codec
        self.services = services
        self.hub: Hub = services.hub
        self.stores: StoreManager = services.stores
        self.limits = limits
        self.admit = admit
        self.id = secrets.token_urlsafe(9)
        self.core = SessionCore(self.id, principal, codec)
        self.outbox = Outbox(conn, binary=codec.binary, on_slow=self._slow_consumer)

    # --- the core's state, as features read and narrow it ---------------------------------

    @property
    def principal(self) -> Principal:
        """Who is connected (replaced by re-auth, narrowed when a key's grants shrink)."""
        return self.core.principal

    @principal.setter
    def principal(self, principal: Principal) -> None:
        self.core.principal = principal

    @property
    def subscriptions(self) -> dict[str, Subscriber]:
        """Subscribed table id -> its subscriber."""
        return self.core.subscriptions

    # --- registry protocol ----------------------------------------------------------------

    @property
    def credential_id(self) -> str:
        """The credential this connection was opened with."""
        return self.core.principal.credential_id

    @property
    def tenant(self) -> str:
        """The tenant this connection belongs to."""
        return self.core.principal.tenant

    def close_now(self, code: int, reason: str) -> None:
        """Close with ``code`` in the background (revocation, expiry, abuse)."""
        self.outbox.close(code, reason)

    def auth_refused(self, *, now: float) -> None:
        """An in-band ``auth`` was refused (answer sent): closes with 4001 if the current
        credential has expired by ``now``."""
        self.core.auth_refused(now=now)
        self.perform()

    def narrow(self, principal: Principal) -> None:
        """The key's grants shrank to ``principal``'s: drop what it may no longer read,
        tell the client (``server/hub/grants.py``)."""
        for table, sub in self.core.narrowed(principal):
            self.hub.unsubscribe(self.tenant, table, sub)
        self.perform()

    def _slow_consumer(self, unsent: int) -> None:
        log.warning(
            "slow consumer closed",
            extra={"session": self.id, "tenant": self.tenant, "unsent_bytes": unsent},
        )
        if self.services.metrics is not None:
            self.services.metrics.slow_consumer_closes += 1

    # --- writing --------------------------------------------------------------------------

    def send(self, message: Any) -> None:
        """Encode and write a message without waiting."""
        self.outbox.write(self.codec.encode(message))
        if self.services.metrics is not None:
            self.services.metrics.message_out(message)

    def perform(self) -> None:
        """Do what the core asked for since the last call: send, close."""
        for action in self.core.actions_to_perform():
            if type(action) is Send:
                self.send(action.message)
            else:
                self.close_now(action.code, action.reason)  # type: ignore[union-attr]

    async def send_paced(self, message: Any) -> None:
        """Encode and write a message, waiting for the socket to drain (large replies)."""
        await self.send_frame_paced(self.codec.encode(message))

    async def send_frame_paced(self, frame: bytes) -> None:
        """Write one encoded frame, waiting for the socket to drain; a client that takes
        nothing for ``outbox.paced_timeout`` seconds (:data:`PACED_SEND_TIMEOUT_S` by
        default) is closed as a slow consumer (4008, then aborted) and this raises
        ``ConnectionClosed``."""
        try:
            await asyncio.wait_for(
                self.conn.send(frame, text=not self.codec.binary), self.outbox.paced_timeout
            )
        except TimeoutError:
            self.outbox.slow_consumer(self.conn.transport.get_write_buffer_size())
            await asyncio.sleep(0)  # the close task queues 4008 before the handler ends
            raise ConnectionClosedError(None, None) from None

    async def send_frames_paced(self, frames: list[bytes]) -> None:
        """Write encoded frames one by one, each as :meth:`send_frame_paced`."""
        for frame in frames:
            await self.send_frame_paced(frame)

    def error(self, code: str, message: str, request: int | None = None, **extra: Any) -> None:
        """Send an ``error``."""
        self.send(Error(code=code, message=message, id=request, **extra))

    # --- main loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Greet the client, then serve its messages until the connection ends."""
        self.send(self.core.welcome(self.limits))
        try:
            while True:
                # Text frames come as str: websockets checks their UTF-8 and fails the
                # connection with 1007 (RFC 6455 section 8.1) when it is invalid.
                data = await self.conn.recv()
                await self.handle_frame(data)
        except ConnectionClosed:
            pass
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        """Drop subscriptions and presence when the connection ends."""
        self.outbox.on_slow = None  # a bound method of this session: a cycle, left to the GC
        subscriptions, left = self.core.ended()
        for table, sub in subscriptions:
            self.hub.unsubscribe(self.tenant, table, sub)
        for event in left:
            self.hub.presence(self.tenant, event.table, event)

    async def handle_frame(self, data: bytes | str) -> None:
        """Hand one frame (``str`` for a text frame) to the core; charge and run the
        message it admits."""
        core = self.core
        message = core.receive(data)
        if message is None:
            self.perform()
            return
        if self.admit is not None:
            refused = await self.admit(self, message)
            if refused is not None:
                core.refused(message, refused)
                self.perform()
                return
        if not core.admitted(message):
            self.perform()
            return
        try:
            await self.dispatch(message)
        except StoreError:
            core.failed(message, shutting_down=True)
            self.perform()
        except ConnectionClosed:
            raise
        except Exception:
            log.exception(
                "request failed",
                extra={
                    "type": type(message).__name__,
                    "session": self.id,
                    **connection_fields(self.conn),
                },
            )
            core.failed(message, shutting_down=False)
            self.perform()

    async def dispatch(self, message: ClientMessage) -> None:
        """Run the handler registered for the message's type (``Services.handlers``: the
        one its row of ``server/hub/messages.py`` names)."""
        handler = self.services.handlers.get(type(message))
        if handler is not None:
            await handler(self, message)

    def drop_subscription(self, table: str) -> None:
        """Stop sending ``table``'s changes (if subscribed)."""
        sub = self.core.subscriptions.pop(table, None)
        if sub is not None:
            self.hub.unsubscribe(self.tenant, table, sub)


def default_limits(ops_per_minute: int, burst_per_second: int) -> ServerLimits:
    """The limits announced in ``welcome``."""
    return ServerLimits(
        max_frame_bytes=MAX_FRAME_BYTES,
        max_ops_per_batch=MAX_OPS_PER_BATCH,
        ops_per_minute=ops_per_minute,
        burst_per_second=burst_per_second,
    )
