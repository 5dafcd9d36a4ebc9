"""One WebSocket connection as the hub runs it: websockets' connection and Sans-I/O protocol,
specialised where the hub differs from the library's defaults.

How it works
------------
- :class:`HubConnection` carries what the handshake verified (the principal, the client's
  address), reports the client's control frames to the burst limit, pings from the loop's
  shared keepalive, waits for the handshake's request on one future (not ``asyncio.wait``
  over two), and writes the ``101`` together with the welcome (no ``send_data`` of its
  own on the way: every later write goes straight to websockets').
- :class:`HubProtocol` is the protocol it adopts: the subprotocol choice (ours, or none for
  JSON; never the ``hypertab.bearer.`` entry) and the security headers on every HTTP
  response it sends, websockets' own refusals (414, 431) included.

Both used to be per-connection wrappers installed on websockets' protocol (of
``send_response`` and ``select_subprotocol``). Each was a closure holding the connection,
which held the protocol: a cycle per connection for the collector, and two closures made
and torn down per handshake. Methods of a class cost neither.
"""

from __future__ import annotations

import http
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import SEND_EOF, State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from protocol.codec import SUBPROTOCOLS
from server.auth.principal import Principal
from server.http.headers import HSTS, security_headers
from server.hub.keepalive import Keepalive, keepalive_for
from server.logbudget import FrameLogGate

CSP = "Content-Security-Policy"


class HubProtocol(ServerProtocol):
    """websockets' server protocol with the hub's subprotocol choice and security headers.

    A :class:`HubConnection` adopts the protocol websockets made for it (``serve`` takes
    no protocol class), so nothing per connection wraps it.
    """

    https: bool
    """Whether responses travel over TLS: our own transport's, until the handshake's
    request says (through a trusted proxy's headers) how the client reached us."""

    def select_subprotocol(self, subprotocols: Sequence[Subprotocol]) -> Subprotocol | None:
        """The first offered subprotocol we speak; ``None`` (JSON) when there is none.
        Never a ``hypertab.bearer.`` entry: that is the credential, not a protocol."""
        for offered in subprotocols:
            if offered in SUBPROTOCOLS:
                return offered
        return None

    def send_response(self, response: Response) -> None:
        """Send ``response`` with every security header (once each)."""
        https = self.https
        if response.status_code != 101 or self.debug:
            add_security_headers(response, https=https)
            super().send_response(response)
            return
        # The upgrade is websockets' own, fresh from accept(): its serialized head ends in
        # the blank line, and the security headers go in before it, serialized once per
        # process rather than set one by one on every handshake.
        super().send_response(response)
        head = self.writes[-1]
        self.writes[-1] = head[:-2] + _SECURITY_BLOCK[https]


class HubConnection(ServerConnection):
    """A server connection that carries the principal verified at the handshake, reports
    the client's control frames (WebSocket pings and pongs) as they arrive, and speaks
    through a :class:`HubProtocol`."""

    # Slots, not the instance dict: websockets' Connection already fills a dict of over 40
    # attributes, and five more made it resize (1.6 KB per connection, bench/RESULTS.md).
    __slots__ = (
        "client_ip",
        "greeting",
        "keepalive_wheel",
        "on_control_frame",
        "principal",
    )

    protocol: HubProtocol
    principal: Principal | None
    client_ip: str | None
    """The client's address: the TCP peer, or what a trusted proxy says it forwarded."""
    on_control_frame: Callable[[], None] | None
    """Called for every ping, and every pong that answers no ping of ours, from the client
    (the burst limit counts them: websockets answers pings by itself, so they would
    otherwise cost nothing)."""
    keepalive_wheel: Keepalive | None
    """The shared keepalive this connection is pinged by, once open."""
    greeting: bool
    """The ``101`` is queued and written next loop turn with whatever is queued behind it
    (the welcome): an outbox need not flush this turn."""

    def __init__(self, protocol: ServerProtocol, server: Any, **kwargs: Any) -> None:
        self.principal = None
        self.client_ip = None
        self.on_control_frame = None
        self.keepalive_wheel = None
        self.greeting = False
        # Same layout (HubProtocol adds methods only): adopted in place.
        protocol.__class__ = HubProtocol
        super().__init__(protocol, server, **kwargs)
        self.protocol.https = False
        # Frame logs bounded before a record is made (the protocol logs every frame at DEBUG).
        self.protocol.logger = self.logger = FrameLogGate(self.protocol.logger)

    @property
    def https(self) -> bool:
        """Whether this connection's responses travel over TLS (ours or a trusted proxy's)."""
        return self.protocol.https

    @https.setter
    def https(self, https: bool) -> None:
        self.protocol.https = https

    def connection_made(self, transport: Any) -> None:
        # Until a request says otherwise (a refusal websockets sends before process_request
        # runs): TLS when our own transport is.
        self.protocol.https = transport.get_extra_info("ssl_object") is not None
        super().connection_made(transport)

    async def handshake(
        self,
        process_request: Callable[..., Any] | None = None,
        process_response: Callable[..., Any] | None = None,
        server_header: str | None = None,
    ) -> None:
        """websockets' opening handshake (``ServerConnection.handshake``, websockets 15 to
        17) for the hub's ``serve`` (``process_request`` only), waiting for the request on
        its one future: ``asyncio.wait`` over the request
        and the connection's loss cost about 4 us more per handshake (a set, a waiter, a
        callback on each future, and a loop turn more), as much as verifying the key.
        A connection lost first resolves the same future (:meth:`connection_lost`)."""
        # The hub's serve() passes neither (HubProtocol.send_response does their work).
        assert process_response is None and server_header is None
        await self.request_rcvd
        request = self.request
        if request is None:  # lost before a request arrived
            return
        protocol = self.protocol
        response = None
        if process_request is not None:
            try:
                response = process_request(self, request)
                if isinstance(response, Awaitable):
                    response = await response
            except Exception as exc:
                protocol.handshake_exc = exc
                self.logger.error("process_request failed", exc_info=True)
                response = protocol.reject(
                    http.HTTPStatus.INTERNAL_SERVER_ERROR,
                    "Failed to open a WebSocket connection.\n"
                    "See server log for more information.\n",
                )
        self.response = protocol.accept(request) if response is None else response
        # Refuse the upgrade if the server started closing meanwhile; nothing yields
        # between this check and send_response.
        if self.response.status_code == 101 and not self.server.is_serving():
            self.response = protocol.reject(
                http.HTTPStatus.SERVICE_UNAVAILABLE, "Server is shutting down.\n"
            )
        if self.state is not State.CONNECTING:  # the connection closed meanwhile
            return
        if self.response.status_code != 101:
            async with self.send_context(expected_state=State.CONNECTING):
                protocol.send_response(self.response)
            return
        # The 101 waits one loop turn for the welcome the handler queues right after it:
        # one write, one segment, not two (nothing to drain yet: the socket is empty).
        protocol.send_response(self.response)
        self.greeting = True
        self.loop.call_soon(self._write_greeting)

    def _write_greeting(self) -> None:
        self.greeting = False
        if not self.transport.is_closing():
            self.write_queued()

    def write_queued(self) -> None:
        """Hand everything the protocol has queued to the transport: several frames in one
        ``writelines`` (one system call), else websockets' ``send_data`` (one frame, or an
        end of stream to half-close after)."""
        protocol = self.protocol
        writes = protocol.writes
        if len(writes) > 1 and SEND_EOF not in writes:
            protocol.writes = []
            self.transport.writelines(writes)
        else:
            self.send_data()

    def start_keepalive(self) -> None:
        """Ping from the loop's shared :class:`~server.hub.keepalive.Keepalive` instead of
        a task of this connection's own (about 1.4 KB per idle connection)."""
        if self.ping_interval is not None:
            self.keepalive_wheel = keepalive_for(self.ping_interval, self.ping_timeout)
            self.keepalive_wheel.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.request_rcvd.done():  # the handshake waits on this future alone
            self.request_rcvd.set_result(None)
        if self.keepalive_wheel is not None:
            self.keepalive_wheel.remove(self)
            self.keepalive_wheel = None

    def process_event(self, event: Any) -> None:
        """websockets' hook for every frame received (after the handshake)."""
        counted = (
            self.on_control_frame is not None
            and isinstance(event, Frame)
            and event.opcode in _COUNTED_CONTROL
            # A pong answering the server's own keepalive ping costs the client nothing.
            and not (event.opcode is Opcode.PONG and bytes(event.data) in self.pending_pings)
        )
        super().process_event(event)
        if counted and self.on_control_frame is not None:
            self.on_control_frame()


_COUNTED_CONTROL = frozenset({Opcode.PING, Opcode.PONG})


def add_security_headers(response: Response, *, https: bool) -> None:
    """Set every security header on ``response``, once each (idempotent). A page's own
    nonce policy (server/web/pages.py) is kept as its ``Content-Security-Policy``. HSTS only
    when ``https`` (the response travels over TLS: ours or a trusted proxy's)."""
    headers = response.headers
    if _SECURITY_NAMES.isdisjoint(headers):  # a fresh response: append them
        for name, value in _SECURITY_HEADERS[https]:
            headers[name] = value
        return
    if not https and HSTS[0] in response.headers:  # never over plain HTTP (RFC 6797 7.2)
        del response.headers[HSTS[0]]
    page_policy = response.headers.get(CSP)
    for name, value in _SECURITY_HEADERS[https]:
        if name == CSP and page_policy is not None:
            value = page_policy
        if name in response.headers:
            del response.headers[name]
        response.headers[name] = value


def forget_handshake(conn: ServerConnection) -> None:
    """Drop the handshake's headers once the connection is open: they held the credential
    (no reason to keep it in memory for the connection's lifetime) and cost about a
    kilobyte per connection. websockets keeps the Request object itself as its state."""
    if conn.request is not None:
        conn.request.headers.clear()  # in place: cheaper than a new Headers
    if conn.response is not None:
        conn.response.headers.clear()
        conn.response.body = b""


# The nonce-less set never changes: built once per scheme rather than once per response.
_SECURITY_HEADERS = {https: tuple(security_headers(https=https).items()) for https in (False, True)}
_SECURITY_NAMES = frozenset(name.lower() for name, _ in _SECURITY_HEADERS[True])
"""Lower-case, as a ``Headers`` iterates its names."""
_SECURITY_BLOCK = {
    https: "".join(f"{name}: {value}\r\n" for name, value in pairs).encode() + b"\r\n"
    for https, pairs in _SECURITY_HEADERS.items()
}
"""The same headers as they go on the wire, with the head's closing blank line."""
