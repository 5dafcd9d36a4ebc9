"""The hub process: wires the control plane, stores, hub and WebSocket server together.

Connection lifecycle: the HTTP upgrade on ``/v1/ws`` is authenticated in ``process_request``
(API key or JWT, from ``Authorization: Bearer`` or a ``hypertab.bearer.<token>`` subprotocol
entry; never the query string) before the upgrade completes and before any tenant database
is opened. Browser ``Origin``s must be on the allowlist. Every HTTP response, refusals
included, carries the security headers. Revocation events close a credential's sockets at
once; a periodic recheck against the key store is the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import time
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from protocol.codec import AUTH_SUBPROTOCOL_PREFIX, JSON, SUBPROTOCOLS
from protocol.errors import CloseCode
from protocol.limits import MAX_FRAME_BYTES
from protocol.messages import Change
from server.auth.errors import AuthError
from server.auth.jwt import JwtConfig, JwtVerifier
from server.auth.principal import Principal
from server.auth.revocation import RevocationEvent, RevocationKind, Subscription
from server.config import Config, load_pepper
from server.control.plane import ControlPlane
from server.http.headers import security_headers
from server.hub import functions as functions_hub
from server.hub.fanout import Hub
from server.hub.registry import Registry
from server.hub.services import Services
from server.hub.session import Session, default_limits
from server.store.formulas import FormulaRuntime
from server.store.manager import StoreManager

log = logging.getLogger(__name__)

WS_PATH = "/v1/ws"


class HubConnection(ServerConnection):
    """A server connection that carries the principal verified at the handshake."""

    principal: Principal | None = None


def bearer_token(headers: Headers) -> str | None:
    """The credential from ``Authorization: Bearer`` or a bearer subprotocol entry."""
    auth = headers.get("Authorization")
    if auth is not None:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    for header in headers.get_all("Sec-WebSocket-Protocol"):
        for item in header.split(","):
            item = item.strip()
            if item.startswith(AUTH_SUBPROTOCOL_PREFIX):
                return item[len(AUTH_SUBPROTOCOL_PREFIX) :]
    return None


class HypertabServer:
    """One hub process. ``await start()``, then ``await stop()``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.hub = Hub()
        self.registry = Registry(config.max_connections_per_credential)
        self.control: ControlPlane | None = None
        self.formulas = FormulaRuntime()
        self.stores = StoreManager(
            config.data_dir,
            on_commit=self._on_commit,
            durability=config.durability,
            max_open=config.max_open_stores,
            check_formula=self.formulas.check,
            recompute=self.formulas.recompute,
        )
        self.services = Services(self.hub, self.stores)
        functions_hub.register(self.services, self.formulas)
        self._server: Server | None = None
        self._revocations: Subscription | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.port = config.port

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the control plane and start listening."""
        cfg = self.config
        jwt = None
        if cfg.jwt_secret:
            jwt = JwtVerifier(JwtConfig(secret=cfg.jwt_secret.encode(), issuer=cfg.jwt_issuer))
        self.control = await ControlPlane.open(
            cfg.data_dir, pepper=load_pepper(cfg.data_dir), environment=cfg.environment, jwt=jwt
        )
        self.services.control = self.control
        self._revocations = await self.control.bus.subscribe(self._on_revocation)
        self._server = await serve(
            self._handle,
            cfg.host,
            cfg.port,
            process_request=self._process_request,
            process_response=self._process_response,
            select_subprotocol=self._select_subprotocol,
            server_header=None,
            compression=None,
            max_size=MAX_FRAME_BYTES,
            max_queue=64,
            write_limit=1 << 16,
            create_connection=HubConnection,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._spawn(self._housekeeping())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Graceful shutdown: stop accepting, commit queued batches, close sockets (1001)."""
        server = self._server
        if server is not None:
            server.server.close()  # stop accepting; keep open connections for the acks
        await self.stores.close()  # commits what is queued; acks are written on commit
        if server is not None:
            server.close(close_connections=True)  # 1001 going away
            await server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._revocations is not None:
            self._revocations.close()
        if self.control is not None:
            await self.control.close()

    async def serve_forever(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down gracefully."""
        await stop.wait()
        await self.stop()

    # --- handshake ------------------------------------------------------------------------

    def _select_subprotocol(self, conn: ServerConnection, offered: Any) -> Any:
        for proto in offered:
            if proto in SUBPROTOCOLS:
                return proto
        return None  # the session then speaks JSON

    def _process_response(
        self, conn: ServerConnection, request: Request, response: Response
    ) -> Response:
        for name, value in security_headers().items():
            response.headers[name] = value
        return response

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path, _, query = request.path.partition("?")
        if path != WS_PATH:
            return self._http(conn, request, path)
        if query:
            return conn.respond(
                http.HTTPStatus.BAD_REQUEST, "No query string: send the credential in a header.\n"
            )
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self.config.allowed_origins:
            return conn.respond(http.HTTPStatus.FORBIDDEN, "Origin not allowed.\n")
        assert self.control is not None
        try:
            principal = await self.control.authenticate(
                bearer_token(request.headers), now=time.time()
            )
        except AuthError as exc:
            log.info("auth failed", extra={"reason": exc.reason.value})
            return conn.respond(http.HTTPStatus.UNAUTHORIZED, "Unauthorized.\n")
        if self.registry.full(principal.credential_id):
            return conn.respond(http.HTTPStatus.TOO_MANY_REQUESTS, "Too many connections.\n")
        assert isinstance(conn, HubConnection)
        conn.principal = principal
        return None

    def _http(self, conn: ServerConnection, request: Request, path: str) -> Response:
        if path == "/healthz":
            return conn.respond(http.HTTPStatus.OK, "ok\n")
        if path == "/readyz":
            ready = self.control is not None and self._server is not None
            status = http.HTTPStatus.OK if ready else http.HTTPStatus.SERVICE_UNAVAILABLE
            return conn.respond(status, "ready\n" if ready else "not ready\n")
        return conn.respond(http.HTTPStatus.NOT_FOUND, "Not found.\n")

    # --- connections ----------------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        assert isinstance(conn, HubConnection)
        principal = conn.principal
        if principal is None:  # pragma: no cover - process_request always sets it
            await conn.close(CloseCode.PROTOCOL_ERROR)
            return
        session = Session(
            conn,
            principal,
            codec_for_subprotocol(conn.subprotocol),
            self.services,
            limits=default_limits(0, 0),
        )
        session.outbox.limit = self.config.send_buffer_bytes
        self.registry.add(session)
        expiry: asyncio.TimerHandle | None = None
        if principal.expires_at is not None:
            delay = max(0.0, principal.expires_at - time.time())
            expiry = asyncio.get_running_loop().call_later(
                delay, session.close_now, CloseCode.AUTH_EXPIRED, "credential expired"
            )
        try:
            await session.run()
        finally:
            if expiry is not None:
                expiry.cancel()
            self.registry.remove(session)

    def _on_commit(self, tenant: str, table: str, changes: list[Change]) -> None:
        self.hub.publish(tenant, table, changes)

    # --- revocation -----------------------------------------------------------------------

    def _on_revocation(self, event: RevocationEvent) -> None:
        if event.kind is RevocationKind.CREDENTIAL and event.credential_id:
            conns = self.registry.of_credential(event.credential_id)
        elif event.kind is RevocationKind.TENANT and event.tenant:
            conns = self.registry.of_tenant(event.tenant)
        else:
            self._spawn(self.recheck())
            return
        self.registry.close(conns, CloseCode.CREDENTIAL_REVOKED, "credential revoked")

    async def recheck(self) -> int:
        """Close every connection whose credential is no longer live; returns how many."""
        assert self.control is not None
        live = {s.credential_id for s in self.registry.all()}
        dead = await self.control.dead_credentials(live, now=time.time())
        closed = 0
        for credential in dead:
            closed += self.registry.close(
                self.registry.of_credential(credential),
                CloseCode.CREDENTIAL_REVOKED,
                "credential revoked",
            )
        return closed

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(self.config.recheck_seconds)
            with contextlib.suppress(Exception):
                await self.recheck()
            with contextlib.suppress(Exception):
                await self.stores.close_idle()


def codec_for_subprotocol(subprotocol: str | None) -> Any:
    """The codec for the negotiated subprotocol (JSON when none was negotiated)."""
    from protocol.codec import codec_for

    return codec_for(subprotocol or JSON)
