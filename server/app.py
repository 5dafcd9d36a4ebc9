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
import http
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Coroutine
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from protocol.codec import JSON, Codec, codec_for
from protocol.errors import CloseCode
from protocol.limits import MAX_FRAME_BYTES
from protocol.messages import Change
from server.alerts.burst import BurstDetector
from server.alerts.config import AlertConfig
from server.alerts.hub import AlertsHub
from server.auth.handshake import (
    AuthFailureHook,
    HandshakeGate,
    Refusal,
    websocket_logger,
)
from server.auth.jwt import JwtConfig, JwtVerifier
from server.auth.revocation import (
    RedisRevocationBus,
    RevocationEvent,
    RevocationKind,
    Subscription,
)
from server.broker import broker_for
from server.config import Config, load_pepper
from server.control.notify import NotifyListener
from server.control.origins import TenantOrigins
from server.control.plane import ControlPlane
from server.control.pulse import ControlPulse
from server.delivery.destination import DestinationPolicy
from server.delivery.retry import RetryPolicy
from server.dirlock import DataDirLock
from server.http import forwarded
from server.http.tls import server_context
from server.hub import audit as audit_handlers
from server.hub import functions as functions_hub
from server.hub import secrets as secrets_hub
from server.hub import tables as tables_hub
from server.hub.admission import Admission, AdmissionSettings
from server.hub.auditwriter import AuditHub
from server.hub.connection import HubConnection, forget_handshake
from server.hub.fanout import Hub
from server.hub.grants import narrow_all
from server.hub.httproutes import HttpRoutes, peer_host
from server.hub.identity import Identity
from server.hub.logcontext import name_connections
from server.hub.metrics import HubMetrics, bind_server
from server.hub.registry import Registry
from server.hub.relay import Relay
from server.hub.services import Services
from server.hub.session import Session, default_limits
from server.hub.webhooks import WebhookHandlers
from server.logbudget import bound_frame_logging
from server.store.formulas import FormulaRuntime
from server.store.manager import StoreManager
from server.tasks import TaskOwner
from server.webhooks.dispatcher import WebhookDispatcher

log = logging.getLogger(__name__)

WS_PATH = "/v1/ws"

RECV_QUEUE_FRAMES = 8
"""Frames websockets reads ahead of a busy session before it stops reading the socket. Each
may be 1 MiB, so this bounds what one connection can pin while its session waits (a paced
answer to a client that stopped reading): 8 MiB, not 64. Pipelined small messages are not
slowed: a read of the socket is parsed whole, whatever this is."""


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
        self.relay = Relay(self.hub, broker_for(config.redis_url), self._fill, self._versions)
        """Changes and presence to and from the other hub processes (server/hub/relay.py)."""
        self.services = Services(self.hub, self.stores)
        tables_hub.register(self.services)
        functions_hub.register(self.services, self.formulas)
        self._server: Server | None = None
        self._revocations: Subscription | None = None
        self._notify: NotifyListener | None = None
        self._pulse: ControlPulse | None = None
        self._redis_bus: RedisRevocationBus | None = None
        self._gate: HandshakeGate | None = None
        self._dirlock: DataDirLock | None = None
        self.identity: Identity | None = None
        self.on_auth_failure: list[AuthFailureHook] = []
        """Called as ``hook(reason, ip, credential_id)`` for every refused handshake or
        in-band re-authentication (the audit log subscribes here). Must not block."""
        # Rate limits, metrics, audit log and HTTP routes (issue 4: docs/operations.md).
        self.metrics = HubMetrics()
        self.services.metrics = self.metrics
        bind_server(self.metrics, self)
        self.metrics.counter(
            "broadcast_gap_fills",
            "Versions read from the op log because their broadcast from another hub process "
            "was late or lost.",
            lambda: self.relay.filled,
        )
        self.metrics.counter(
            "broadcast_stalls",
            "Tables whose committed version was still undelivered here a whole watermark "
            "round later, with no later broadcast to show the gap (filled from the op log).",
            lambda: self.relay.stalls,
        )
        self.metrics.counter(
            "broadcast_send_failures",
            "Broadcasts this process could not send to Redis (filled from the op log).",
            lambda: self.relay.broker.dropped,
        )
        self.admission = Admission.for_url(
            config.redis_url,
            config.admission or AdmissionSettings.from_env(),
            metrics=self.metrics,
        )
        self.audit = AuditHub(
            self.stores, self.admission.denials, retention_days=config.audit_retention_days
        )
        audit_handlers.register(self.services)
        self.on_auth_failure += [self.admission.auth_failure_hook, self.audit.auth_failed]
        # Alerts (issue 14: docs/alerts.md): the outbox dispatcher, bursts, abuse closes.
        env = config.environ  # None: os.environ (the validated settings with `serve`)
        self.alerts = AlertsHub(AlertConfig.from_env(env), BurstDetector.from_env(env))
        self.on_auth_failure.append(self.alerts.auth_failed)
        self.admission.on_abuse.append(
            lambda s: self.alerts.abuse_closed(s.principal.tenant, s.principal.credential_id, None)
        )
        self.metrics.gauge("alerts_failed", "Alerts given up after the retry bound.",
                           lambda: self.alerts.failed)  # fmt: skip
        self.webhooks: WebhookDispatcher | None = None  # tenant webhooks, from start()
        self._webhook_policy = DestinationPolicy.from_env(allow_loopback=False, environ=env)
        self._delivery_retry = RetryPolicy.from_env(env)
        WebhookHandlers(lambda: self.webhooks, self._webhook_policy, self._delivery_retry).register(
            self.services
        )
        self.metrics.gauge("webhook_batches_delivered", "Webhook batches delivered.",
                           lambda: self.webhooks.delivered if self.webhooks else 0)  # fmt: skip
        self.metrics.gauge("webhook_batches_failed", "Webhook batches dropped past the bound.",
                           lambda: self.webhooks.failed if self.webhooks else 0)  # fmt: skip
        self.http = HttpRoutes(self)
        self.tasks = TaskOwner("hub")
        """Owner of every background task the hub starts (failures logged, not lost)."""
        self.port = config.port
        self.trusted_proxies = forwarded.networks(config.trusted_proxies)
        self.tls: ssl.SSLContext | None = None
        """The TLS context (``tls_cert``/``tls_key``), made by :meth:`start`; ``None``: plain."""
        self.listen_socket: socket.socket | None = None
        """A listening socket to accept on instead of binding ``host:port`` (set before
        :meth:`start`): a worker of ``serve --workers N`` shares its supervisor's."""

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the control plane and start listening.

        When a step fails, everything opened before it is closed again (:meth:`stop`) and
        the error is raised: the aiosqlite connections are threads that would otherwise keep
        the process alive after it gave up, and background tasks would keep running."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        cfg = self.config
        jwt = jwt_verifier(cfg)  # AuthConfigError on unusable settings, before anything opens
        if cfg.tls_cert is not None and cfg.tls_key is not None:
            self.tls = server_context(cfg.tls_cert, cfg.tls_key)  # TlsConfigError, likewise
        # DataDirInUse when another hub serves this data dir and we could not see its edits
        self._dirlock = DataDirLock.acquire(cfg.data_dir, shared=bool(cfg.redis_url))
        await self.relay.start()  # BrokerError when Redis is unreachable
        if cfg.redis_url:  # revocations reach every node through Redis
            self._redis_bus = RedisRevocationBus.from_url(cfg.redis_url)
        self.control = await ControlPlane.open(
            cfg.data_dir,
            pepper=load_pepper(cfg.data_dir),
            environment=cfg.environment,
            jwt=jwt,
            bus=self._redis_bus,
        )
        self.services.control = self.control
        origins = await TenantOrigins.open(self.control)
        self._gate = HandshakeGate(
            self.control,
            self.registry,
            allowed_origins=cfg.allowed_origins,
            tenant_origin=origins.allowed,
            on_failure=self.on_auth_failure,
        )
        self.identity = Identity(
            self.control,
            self.registry,
            jwt_grace=jwt.config.leeway if jwt is not None else 0.0,
            on_auth_failure=self.on_auth_failure,
        )
        self.identity.register(self.services)
        await secrets_hub.install(self.services, cfg)  # refuses unsafe master keys
        self._revocations = await self.control.bus.subscribe(self._on_revocation)
        # One data_version read every 50 ms for the watcher and both dispatchers.
        self._pulse = pulse = ControlPulse(self.control.path)
        pulse.start()
        watcher = self.control.watcher
        if watcher is not None:  # other processes (the CLI) wake us after revoking
            watcher.follow(pulse)
            self._notify = NotifyListener(
                cfg.data_dir, lambda: self._spawn(watcher.poll_once(), "control-db poll")
            )
            await self._notify.start()
        await self.audit.start(self.control)
        await self.alerts.start(self.control, pulse=pulse)
        self.webhooks = WebhookDispatcher(
            self.stores,
            self.control,
            lambda: self.services.lifecycle,
            policy=self._webhook_policy,
            retry=self._delivery_retry,
            pulse=pulse,
        )
        await self.webhooks.start()
        # A worker of `serve --workers N` is handed the socket its supervisor listens on.
        where: dict[str, Any] = (
            {"sock": self.listen_socket}
            if self.listen_socket is not None
            else {"host": cfg.host, "port": cfg.port}
        )
        self._server = await serve(
            self._handle,
            **where,
            process_request=self._process_request,
            server_header=None,
            compression=None,
            max_size=MAX_FRAME_BYTES,
            max_queue=RECV_QUEUE_FRAMES,
            write_limit=1 << 16,
            ping_interval=cfg.keepalive_interval_s,
            ping_timeout=cfg.keepalive_timeout_s,
            create_connection=HubConnection,
            logger=name_connections(bound_frame_logging(websocket_logger())),
            ssl=self.tls,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._spawn(self._housekeeping(), "housekeeping")

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self.tasks.spawn(coro, name)

    async def stop(self) -> None:
        """Graceful shutdown: stop accepting, commit queued batches, close sockets (1001).

        Also closes whatever a failed :meth:`start` had opened: each step runs even when an
        earlier one failed (that failure is logged), so no connection thread is left behind.
        """
        server = self._server
        self._server = None
        if server is not None:
            server.server.close()  # stop accepting; keep open connections for the acks
        await _step("audit", self.audit.stop())  # pending audit entries, before the stores close
        await _step("alerts", self.alerts.stop())
        if self.webhooks is not None:  # undelivered changes stay in the outboxes
            await _step("webhooks", self.webhooks.stop())
        await _step("stores", self.stores.close())  # commits what is queued; acks on commit
        await _step("relay", self.relay.close())  # after the last commit was published
        if server is not None:
            server.close(close_connections=True)  # 1001 going away
            await _step("connections", server.wait_closed())
        await _step("tasks", self.tasks.cancel_all())
        if self._notify is not None:
            await _step("notify socket", self._notify.stop())
        if self._pulse is not None:
            self._pulse.close()
            self._pulse = None
        if self._revocations is not None:
            self._revocations.close()
        if self.services.lifecycle is not None:
            await _step("lifecycle", self.services.lifecycle.close())
        if self.control is not None:
            await _step("control plane", self.control.close())
        if self._redis_bus is not None:
            await _step("revocation bus", self._redis_bus.close())
        await _step("admission", self.admission.close())
        if self._dirlock is not None:
            self._dirlock.release()
            self._dirlock = None

    async def serve_forever(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down gracefully."""
        await stop.wait()
        await self.stop()

    # --- handshake ------------------------------------------------------------------------

    def client(self, conn: ServerConnection, request: Request) -> forwarded.Client:
        """Who sent ``request``: address and scheme, through a trusted proxy's headers."""
        return forwarded.resolve(
            peer_host(conn), request.headers, self.trusted_proxies, tls=self.tls is not None
        )

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path, _, query = request.path.partition("?")
        client = self.client(conn, request)
        ip = client.ip
        assert isinstance(conn, HubConnection)
        conn.client_ip = ip
        conn.https = client.https  # the protocol's send_response puts HSTS on when true
        if path != WS_PATH:
            return await self.http.respond(conn, request, path)
        if (misdirected := self.http.host_refusal(conn, request)) is not None:  # DNS rebinding
            return misdirected
        assert self._gate is not None
        wait_ms = self.admission.handshake_retry_after(ip)  # repeated failed handshakes
        if wait_ms is not None:
            refused = conn.respond(http.HTTPStatus.TOO_MANY_REQUESTS, "Too many attempts.\n")
            refused.headers["Retry-After"] = str(-(-wait_ms // 1000))
            return refused
        principal = await self._gate.check(request.headers, query, ip=ip, now=time.time())
        if isinstance(principal, Refusal):
            return conn.respond(principal.status, principal.body)
        conn.principal = principal
        return None

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
            limits=self.admission.limits_for(principal, default_limits(0, 0)),
            admit=self.admission,
        )
        session.outbox.limit = self.config.send_buffer_bytes
        session.outbox.paced_timeout = self.config.paced_send_timeout_s
        conn.on_control_frame = lambda: self.admission.control_frame(session)
        forget_handshake(conn)
        if self.registry.full(principal.credential_id):  # handshakes that raced past the cap
            await conn.close(CloseCode.TOO_MANY_CONNECTIONS, "too many connections")
            return
        self.registry.add(session)
        assert self.identity is not None
        self.identity.track(session)  # closes at expiry (4001) unless re-authenticated
        try:
            await session.run()
        finally:
            conn.on_control_frame = None  # it holds the session, which holds conn: a cycle
            self.identity.untrack(session)
            self.registry.remove(session)

    def _on_commit(self, tenant: str, table: str, changes: list[Change]) -> None:
        self.metrics.committed(changes)
        self.relay.committed(tenant, table, changes)
        if self.webhooks is not None:
            self.webhooks.committed(tenant)

    async def _fill(self, tenant: str, table: str, since: int) -> list[Change] | None:
        async with self.stores.use(tenant) as store:
            replay = await store.since(table, since)
        return None if replay is None else replay[1]

    async def _versions(self, tenant: str) -> dict[str, int]:
        async with self.stores.use(tenant) as store:
            return await store.versions()

    # --- revocation -----------------------------------------------------------------------

    def _on_revocation(self, event: RevocationEvent) -> None:
        if event.kind is RevocationKind.GRANTS and event.credential_id:
            self._spawn(self._narrow(event.credential_id), "narrow key grants")
            return
        if event.kind is RevocationKind.CREDENTIAL and event.credential_id:
            conns = self.registry.of_credential(event.credential_id)
        elif event.kind is RevocationKind.TENANT and event.tenant:
            conns = self.registry.of_tenant(event.tenant)
            # deleted: release its files
            self._spawn(self.stores.close_tenant(event.tenant), "close deleted tenant")
        else:
            self._spawn(self.recheck(), "recheck")
            return
        closed = self.registry.close(conns, CloseCode.CREDENTIAL_REVOKED, "credential revoked")
        self.metrics.revocation_closes += closed

    async def _narrow(self, credential_id: str) -> None:
        """A key's grants were narrowed (``GRANTS`` event): re-read them, narrow its sockets."""
        assert self.control is not None
        grants = await self.control.grants_of([credential_id])
        if credential_id in grants:
            narrow_all(self.registry.of_credential(credential_id), *grants[credential_id])

    async def recheck(self) -> int:
        """Close every connection whose credential is no longer live, and narrow those whose
        key's grants shrank (events may have been lost); returns how many were closed."""
        assert self.control is not None
        live = {s.credential_id for s in self.registry.all()}
        for credential, (scopes, tables) in (await self.control.grants_of(live)).items():
            narrow_all(self.registry.of_credential(credential), scopes, tables)
        dead = await self.control.dead_credentials(live, now=time.time())
        closed = 0
        for credential in dead:
            closed += self.registry.close(
                self.registry.of_credential(credential),
                CloseCode.CREDENTIAL_REVOKED,
                "credential revoked",
            )
        self.metrics.revocation_closes += closed
        return closed

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(self.config.recheck_seconds)
            # Each round stands alone: a failure is logged and the next round retries.
            try:
                await self.recheck()
            except Exception as exc:
                log.warning("periodic credential recheck failed (%s)", type(exc).__name__)
            try:
                await self.stores.close_idle()
            except Exception as exc:
                log.warning("closing idle stores failed (%s)", type(exc).__name__)


async def _step(what: str, step: Awaitable[object]) -> None:
    """Await one step of :meth:`HypertabServer.stop`; a failure is logged, not raised, so
    the steps after it still run."""
    try:
        await step
    except Exception as exc:
        log.warning("stopping: %s failed (%s)", what, type(exc).__name__)


def jwt_verifier(cfg: Config) -> JwtVerifier | None:
    """The JWT verifier ``cfg`` asks for (secret and/or JWKS file), or ``None`` for none.

    Algorithms default to HS256 when a secret is set, plus RS256 and ES256 when a JWKS file
    is; :class:`~server.auth.errors.AuthConfigError` when the settings do not fit together.
    """
    if not cfg.jwt_secret and cfg.jwt_jwks is None:
        return None
    algorithms = cfg.jwt_algorithms or (
        *(("HS256",) if cfg.jwt_secret else ()),
        *(("RS256", "ES256") if cfg.jwt_jwks is not None else ()),
    )
    return JwtVerifier(
        JwtConfig(
            secret=cfg.jwt_secret.encode() if cfg.jwt_secret else None,
            algorithms=tuple(algorithms),
            audience=cfg.jwt_audience,
            issuer=cfg.jwt_issuer or None,
            leeway=cfg.jwt_leeway,
            jwks_path=cfg.jwt_jwks,
        )
    )


def codec_for_subprotocol(subprotocol: str | None) -> Codec:
    """The codec for the negotiated subprotocol (JSON when none was negotiated)."""
    return codec_for(subprotocol or JSON)
