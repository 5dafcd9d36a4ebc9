"""The plain HTTP routes served on the WebSocket port: ``/healthz``, ``/readyz``, ``/metrics``,
and the browser page (``/``, ``/t/<table id>``, ``/static/*``: ``server/web``).

Every answer is a short fixed text (never an exception's text: no stack trace, no version
banner); ``HubProtocol.send_response`` (server/hub/connection.py) adds the security headers
to all of them, as to every other response. Unknown paths get 404, methods other than GET 405.

``/metrics`` is for the operator's scraper only: it is served when the request carries
``Authorization: Bearer $HYPERTAB_METRICS_TOKEN`` (compared in constant time), or when the
TCP peer is a loopback address (the connection's own ``remote_address``, never a header such
as ``X-Forwarded-For``, which a client could forge). Anything else gets 403. Behind a proxy
on the same host every peer is loopback: set a token and do not route ``/metrics`` through
it (``docs/operations.md``).

Before any route, and before the WebSocket upgrade, :meth:`HttpRoutes.host_refusal` answers
421 to a ``Host`` the hub does not call its own (``server/http/hosts.py``: DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hmac
import http
import ipaddress
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from server.http.hosts import HostAllowlist
from server.hub.metrics import CONTENT_TYPE
from server.web import WebPages

if TYPE_CHECKING:
    from server.app import HypertabServer

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 2.0
"""How long ``/readyz`` waits for a dependency before calling it not ready."""


def peer_host(conn: Any) -> str | None:
    """The TCP peer's address of a connection (``remote_address``), or ``None``."""
    remote = getattr(conn, "remote_address", None)
    if isinstance(remote, tuple) and remote:
        return str(remote[0])
    return None


def client_host(conn: Any) -> str | None:
    """The client's address for the audit log: what a trusted proxy forwarded (the
    connection's ``client_ip``, set at the handshake), else the TCP peer."""
    forwarded = getattr(conn, "client_ip", None)
    return forwarded if isinstance(forwarded, str) else peer_host(conn)


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1, or ::ffff:127.x)."""
    if host is None:
        return False
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def bearer_matches(headers: Headers, token: str | None) -> bool:
    """Whether the request's single ``Authorization: Bearer`` value equals ``token``."""
    if not token:
        return False
    values = headers.get_all("Authorization")
    if len(values) != 1:
        return False
    scheme, _, value = values[0].partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


def metrics_allowed(
    headers: Headers,
    peer: str | None,
    token: str | None,
    *,
    peer_allowed: Callable[[str | None], bool] = is_loopback,
) -> bool:
    """The ``/metrics`` decision: the right bearer token, or an allowed (loopback) peer."""
    return bearer_matches(headers, token) or peer_allowed(peer)


class HttpRoutes:
    """Answers the non-WebSocket paths for one server."""

    def __init__(self, server: HypertabServer) -> None:
        self.server = server
        self.peer_allowed: Callable[[str | None], bool] = is_loopback
        """Which peers may read ``/metrics`` without the token (loopback by default)."""
        self.web = WebPages()
        """The spreadsheet page and the JavaScript client."""
        config = server.config
        self.hosts = HostAllowlist(config.allowed_hosts, bind_host=config.host)
        """The ``Host`` values answered (loopback, IP literals, the bound name, the list)."""

    def host_refusal(self, conn: ServerConnection, request: Request) -> Response | None:
        """421 when the request's ``Host`` is not one of the hub's names, else ``None``.

        The value is never echoed or logged: it is whatever a page chose to send.
        """
        if self.hosts.allows(request.headers.get_all("Host")):
            return None
        return conn.respond(http.HTTPStatus.MISDIRECTED_REQUEST, "Unknown host.\n")

    async def respond(self, conn: ServerConnection, request: Request, path: str) -> Response:
        """The response for ``path`` (already stripped of its query string)."""
        refused = self.host_refusal(conn, request)
        if refused is not None:
            return refused
        if request.method != "GET":  # websockets parses any method; these routes read only
            refused = conn.respond(http.HTTPStatus.METHOD_NOT_ALLOWED, "Method not allowed.\n")
            refused.headers["Allow"] = "GET"
            return refused
        if path == "/healthz":
            return conn.respond(http.HTTPStatus.OK, "ok\n")
        if path == "/readyz":
            ready = await self.ready()
            status = http.HTTPStatus.OK if ready else http.HTTPStatus.SERVICE_UNAVAILABLE
            return conn.respond(status, "ready\n" if ready else "not ready\n")
        if path == "/metrics":
            return self.metrics(conn, request)
        page = self.web.respond(path)
        if page is not None:
            return page
        return conn.respond(http.HTTPStatus.NOT_FOUND, "Not found.\n")

    def metrics(self, conn: ServerConnection, request: Request) -> Response:
        """``/metrics``: the Prometheus text, or 403."""
        token = self.server.config.metrics_token
        if not metrics_allowed(
            request.headers, peer_host(conn), token, peer_allowed=self.peer_allowed
        ):
            return conn.respond(http.HTTPStatus.FORBIDDEN, "Forbidden.\n")
        body = self.server.metrics.render()
        headers = Headers(
            [
                ("Date", email.utils.formatdate(usegmt=True)),
                ("Connection", "close"),
                ("Content-Length", str(len(body))),
                ("Content-Type", CONTENT_TYPE),
            ]
        )
        return Response(http.HTTPStatus.OK.value, http.HTTPStatus.OK.phrase, headers, body)

    async def ready(self) -> bool:
        """Control database readable, data directory writable, Redis reachable and the
        broadcast connection up (when set)."""
        server = self.server
        if server.control is None:
            return False
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await server.control.ping()
                if not await asyncio.to_thread(os.access, server.stores.data_dir, os.W_OK):
                    return False
                if not server.relay.broker.healthy:  # other processes' edits would not arrive
                    return False
                ping = getattr(server.admission.limiter, "ping", None)
                if ping is not None:
                    await ping()
        except Exception as exc:
            with contextlib.suppress(Exception):
                log.warning("not ready (%s)", type(exc).__name__)
            return False
        return True
