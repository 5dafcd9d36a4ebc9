"""``hypertab serve``: run one hub process until SIGTERM or SIGINT.

``--demo`` makes sure a tenant named ``demo`` exists (on :data:`DEMO_PLAN`, whose limits a
script does not hit; the limits are printed). When it is created, its API key is printed
once, with the URL and how to run the CLI. Keys are stored hashed, so later runs cannot show
it again: they say so and print the command that issues a fresh one. (Keeping the plaintext
in a file next to the database would let ``make serve`` repeat it, but would also leave a
live credential on disk; show-once is the rule for every key, the demo's included.)

``--json`` prints each startup line as one JSON object (``event``: ``listening``, ``demo``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from server.app import WS_PATH, HypertabServer, jwt_verifier
from server.auth.apikeys import IssuedKey
from server.auth.errors import AuthConfigError
from server.auth.jwt import SUPPORTED_ALGORITHMS
from server.auth.principal import Plan, Scope
from server.broker.base import BrokerError
from server.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    CliError,
    Commands,
    Output,
    add_json_flag,
    data_dir_parent,
    load_pepper_checked,
    now,
    stderr,
)
from server.cli.lifecycle import lifecycle_of
from server.config import Config
from server.control.tenants import TenantRecord
from server.dirlock import DataDirInUse
from server.gctune import after_startup as tune_gc
from server.http.tls import TlsConfigError
from server.hub.admission import AdmissionSettings
from server.lifecycle.keysource import ensure_local_key_file
from server.logs import configure_logging
from server.secrets.errors import SecretsError
from server.secrets.files import read_private_file
from server.settings import Settings
from server.settings import load as load_settings
from server.store.schema import Durability
from server.workers import listen

DEMO_TENANT = "demo"
DEMO_PLAN = Plan.ENTERPRISE
"""The demo tenant's plan: limits a newcomer's script does not run into (50,000 ops/min)."""
DEMO_KEY_SCOPES = (Scope.TABLES_READ, Scope.TABLES_WRITE, Scope.SCHEMA_WRITE)
"""What the key suggested on later runs may do: enough for the README's example."""


def register(commands: Commands) -> None:
    """Add the ``serve`` command."""
    serve = commands.add_parser(
        "serve",
        parents=[data_dir_parent()],
        help="run the server",
        description="Run the Hypertab server until SIGTERM or SIGINT (graceful: queued "
        "batches are committed and acknowledged, sockets closed with 1001).",
        epilog="--demo creates a tenant named 'demo' on first run and prints its API key "
        "once. Keys are stored hashed, so later runs cannot show it again; they print the "
        "command that issues a new one instead (no plaintext key is kept on disk).",
    )
    serve.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML settings file (default: $HYPERTAB_CONFIG); HYPERTAB_* variables override "
        "it and flags override both (docs/operations.md; hypertab config example)",
    )
    serve.add_argument("--host", default=None, help="address to bind (default: 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=None, help="port to bind; 0 picks a free one (default: 8765)"
    )
    serve.add_argument(
        "--durability",
        choices=[d.value for d in Durability],
        default=None,
        help="process: acked ops survive a crash of the server (synchronous=NORMAL); "
        "power: they survive power loss too (synchronous=FULL, one fsync per group commit). "
        "Default: $HYPERTAB_DURABILITY, else process",
    )
    serve.add_argument(
        "--port-file",
        type=Path,
        metavar="PATH",
        help="once listening, write the bound port to PATH (useful with --port 0)",
    )
    serve.add_argument(
        "--demo", action="store_true", help="create a 'demo' tenant on first run (see below)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="run N hub processes on the one port, supervised: a worker that dies is "
        "restarted; SIGTERM drains them all. N > 1 needs HYPERTAB_REDIS_URL "
        "(default: $HYPERTAB_WORKERS, else 1)",
    )
    # A worker of `serve --workers N`: accept on the supervisor's socket (file descriptor),
    # and stop when that supervisor dies. Started by the supervisor only.
    serve.add_argument("--worker-fd", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument("--supervisor-pid", type=int, default=None, help=argparse.SUPPRESS)
    jwt = serve.add_argument_group(
        "JWT access tokens",
        "Accept JWTs besides API keys (docs/auth.md). Each flag overrides its HYPERTAB_JWT_* "
        "variable. The HS256 secret comes from $HYPERTAB_JWT_SECRET or --jwt-secret-file, "
        "never from the command line (other users can read it there).",
    )
    jwt.add_argument(
        "--jwt-secret-file",
        type=Path,
        metavar="PATH",
        help="HS256 secret (>= 32 bytes) in a file of mode 0600 (default: $HYPERTAB_JWT_SECRET)",
    )
    jwt.add_argument(
        "--jwt-jwks",
        type=Path,
        metavar="PATH",
        help="local JWKS file with the RS256/ES256 public keys; never fetched over the "
        "network (default: $HYPERTAB_JWT_JWKS)",
    )
    jwt.add_argument(
        "--jwt-algorithm",
        action="append",
        choices=sorted(SUPPORTED_ALGORITHMS),
        metavar="ALG",
        help="accept this algorithm; repeat for several (default: $HYPERTAB_JWT_ALGORITHMS, "
        "comma-separated, else HS256 with a secret plus RS256 and ES256 with a JWKS file)",
    )
    jwt.add_argument(
        "--jwt-issuer", metavar="ISS", help="required iss claim (default: $HYPERTAB_JWT_ISSUER)"
    )
    jwt.add_argument(
        "--jwt-audience",
        metavar="AUD",
        help="required aud claim (default: $HYPERTAB_JWT_AUDIENCE, else authenticated)",
    )
    jwt.add_argument(
        "--jwt-leeway",
        type=float,
        metavar="SECONDS",
        help="clock leeway for exp/nbf/iat, 0-300 (default: $HYPERTAB_JWT_LEEWAY, else 30)",
    )
    tls = serve.add_argument_group(
        "TLS",
        "Serve wss:// and https:// (TLS 1.2+; HSTS is sent only over TLS). Behind a "
        "TLS-terminating proxy, list it in --trusted-proxy instead (docs/operations.md).",
    )
    tls.add_argument(
        "--tls-cert", metavar="PEM", help="certificate chain (default: $HYPERTAB_TLS_CERT)"
    )
    tls.add_argument(
        "--tls-key", metavar="PEM", help="its private key, mode 0600 (default: $HYPERTAB_TLS_KEY)"
    )
    tls.add_argument(
        "--trusted-proxy",
        action="append",
        metavar="ADDR",
        help="believe X-Forwarded-For/-Proto from this address or network; repeatable "
        "(default: $HYPERTAB_TRUSTED_PROXIES, comma-separated)",
    )
    serve.add_argument(
        "--log-level",
        default=None,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="JSON logs on stderr at this level (default: $HYPERTAB_LOG_LEVEL, else INFO)",
    )
    add_json_flag(serve)
    serve.set_defaults(handler=serve_command, creates_data_dir=True)


_FLAGS: dict[str, str] = {
    "data_dir": "data_dir",
    "host": "host",
    "port": "port",
    "durability": "durability",
    "log_level": "log_level",
    "workers": "workers",
    "tls_cert": "tls_cert",
    "tls_key": "tls_key",
    "trusted_proxy": "trusted_proxies",
    "jwt_secret_file": "jwt_secret_file",
    "jwt_jwks": "jwt_jwks",
    "jwt_algorithm": "jwt_algorithms",
    "jwt_issuer": "jwt_issuer",
    "jwt_audience": "jwt_audience",
    "jwt_leeway": "jwt_leeway",
}
"""argparse destination -> setting name, for the flags that override a setting."""


def settings_of(args: argparse.Namespace) -> Settings:
    """The file, the environment and the flags given, as validated :class:`Settings`."""
    flags: dict[str, Any] = {}
    for dest, name in _FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None:
            flags[name] = str(value) if isinstance(value, Path) else value
    return load_settings(args.config, flags=flags)


def serve_command(args: argparse.Namespace) -> int:
    """``serve``: build the config, run the server under uvloop when available (or, with
    ``--workers N`` > 1, a supervisor of N such servers: server/workers/)."""
    settings = settings_of(args)
    worker = args.worker_fd is not None
    if settings.workers > 1 and not worker and not settings.redis_url:
        raise CliError(
            f"--workers {settings.workers} needs Redis: set HYPERTAB_REDIS_URL (or redis_url "
            "in the config file). The worker processes share rate windows, revocations and "
            "change broadcasts through it; without it use --workers 1 (docs/operations.md)"
        )
    config = Config.from_settings(settings, jwt_secret=_jwt_secret(settings))
    try:
        jwt_verifier(config)  # refuse unusable settings now, with one clear line
    except AuthConfigError as exc:
        raise CliError(f"JWT settings: {exc}") from None
    load_pepper_checked(config.data_dir)  # refuse a bad pepper file with one clear line
    if args.demo and (key_id := ensure_local_key_file(config.data_dir)) is not None:
        stderr(f"generated master key {key_id} in {config.data_dir} (mode 0600)")
    configure_logging(settings.log_level)
    out = Output(json=args.json)
    if settings.workers > 1 and not worker:
        from server.cli.serve_workers import supervise  # it imports this module's helpers

        # The supervisor serves nothing itself: the default event loop is enough.
        return asyncio.run(
            supervise(settings, config, demo=args.demo, port_file=args.port_file, out=out)
        )
    sock = None
    if worker:
        if args.supervisor_pid is not None:
            listen.die_with(args.supervisor_pid)
        sock = listen.inherited(args.worker_fd)
    return _run(_serve(config, demo=args.demo, port_file=args.port_file, out=out, sock=sock))


def _jwt_secret(settings: Settings) -> str | None:
    """The HS256 secret from ``jwt_secret_file``, else ``None`` (``$HYPERTAB_JWT_SECRET``)."""
    if settings.jwt_secret_file is None:
        return None
    try:
        secret = read_private_file(Path(settings.jwt_secret_file))
    except SecretsError as exc:
        raise CliError(f"--jwt-secret-file (jwt_secret_file): {exc}") from None
    return secret.decode("utf-8", "replace").strip()


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(coro)
    return uvloop.run(coro)


def ws_url(host: str, port: int, *, tls: bool = False) -> str:
    """The WebSocket URL clients use for a bound address (``wss://`` with TLS)."""
    shown = f"[{host}]" if ":" in host else host
    return f"{'wss' if tls else 'ws'}://{shown}:{port}{WS_PATH}"


def page_url(ws: str) -> str:
    """The spreadsheet page of the hub at WebSocket URL ``ws`` (``https`` for ``wss``)."""
    return "http" + ws.removeprefix("ws").removesuffix(WS_PATH) + "/"


def cli_command() -> str:
    """How the operator runs this CLI: the path they used (``.venv/bin/hypertab``), relative
    to the working directory when it is under it, else ``hypertab``."""
    argv0 = Path(sys.argv[0])
    if argv0.name != "hypertab":
        return "hypertab"
    with contextlib.suppress(ValueError):
        return str(argv0.resolve().relative_to(Path.cwd().resolve()))
    return str(argv0) if argv0.is_absolute() else "hypertab"


async def ensure_demo(directory: Path) -> tuple[TenantRecord, IssuedKey | None]:
    """The demo tenant, and its key when it was created just now."""
    async with lifecycle_of(directory) as (plane, lifecycle):
        for tenant in await plane.list_tenants():
            if tenant.name == DEMO_TENANT:
                return tenant, None
        tenant, issued = await lifecycle.create_tenant(
            DEMO_TENANT, DEMO_PLAN, now=now(), actor="serve --demo"
        )
        return tenant, issued


def demo_limits(config: Config, plan: Plan) -> dict[str, int]:
    """The rate limits the demo tenant's keys get (0: not limited)."""
    admission = config.admission or AdmissionSettings.from_env()
    if not admission.enabled:
        return {"ops_per_minute": 0, "burst_per_second": 0}
    return {
        "ops_per_minute": admission.policy.plan_limits[plan],
        "burst_per_second": admission.policy.burst_limit,
    }


def print_demo(
    out: Output,
    tenant: TenantRecord,
    issued: IssuedKey | None,
    url: str,
    config: Config,
) -> None:
    cli = cli_command()
    limits = demo_limits(config, tenant.plan)
    new_key = (
        f"{cli} key create --data-dir {config.data_dir} --tenant {DEMO_TENANT} --name demo "
        + " ".join(f"--scope {s.value}" for s in DEMO_KEY_SCOPES)
    )
    shown = (
        f"{limits['ops_per_minute']} ops/min per key, {limits['burst_per_second']} "
        "messages/s per connection (the SDK paces itself to these)"
        if limits["ops_per_minute"]
        else "no rate limits"
    )
    page = page_url(url)
    fields: dict[str, Any] = {
        "page": f"{page}#key={issued.secret}" if issued is not None else page,
        "tenant": tenant.id,
        "plan": tenant.plan.value,
        "limits": limits,
        "url": url,
        "key": issued.secret if issued is not None else None,
        "new_key_command": new_key,
        "cli": cli,
    }
    state = "created" if issued is not None else "exists"
    lines = [f"demo tenant {tenant.id} {state}, plan {tenant.plan.value}: {shown}"]
    if issued is not None:
        lines += [
            "  its API key (shown once, stored hashed; it has every scope):",
            f"    {issued.secret}",
            f"  open in a browser: {page}#key={issued.secret}",
            "    (the key sits in the #fragment: browsers never send it to the server)",
            f"  Python: await client_sdk.Client.connect({url!r}, api_key=<the key above>)",
        ]
    else:
        lines += [
            "  its first key was shown on the first run and cannot be shown again. New one:",
            f"    {new_key}",
            f"  open in a browser: {page} and paste a key",
        ]
    lines += [
        f"  the command line: {cli} --help"
        + ("   (or: source .venv/bin/activate, then hypertab --help)" if ".venv" in cli else ""),
    ]
    out.emit("demo", "\n".join(lines), **fields)


def write_port_file(path: Path, port: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(path)


async def _serve(
    config: Config,
    *,
    demo: bool,
    port_file: Path | None,
    out: Output,
    sock: socket.socket | None = None,
) -> int:
    demo_info = await ensure_demo(config.data_dir) if demo else None
    server = HypertabServer(config)
    server.listen_socket = sock
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)

    def on_signal() -> None:
        if stop.is_set():  # a second signal: stop waiting for the graceful path
            for sig in signals:
                loop.remove_signal_handler(sig)
            return
        stop.set()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    try:
        return await _serve_until(server, config, stop, demo_info, port_file, out)
    finally:
        # A signal after this point must end the process, not set an event nobody awaits.
        for sig in signals:
            loop.remove_signal_handler(sig)


async def _serve_until(
    server: HypertabServer,
    config: Config,
    stop: asyncio.Event,
    demo_info: tuple[TenantRecord, IssuedKey | None] | None,
    port_file: Path | None,
    out: Output,
) -> int:
    # A failed start has closed whatever it opened (HypertabServer.start): report and exit.
    try:
        await server.start()
    except OSError as exc:
        where = "the socket from the supervisor" if server.listen_socket else (
            f"{config.host}:{config.port}")  # fmt: skip
        print(
            f"hypertab: error: cannot listen on {where}: {exc.strerror or exc}",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_FAILURE
    except (SecretsError, TlsConfigError, DataDirInUse, BrokerError) as exc:  # e.g. a bad key
        print(f"hypertab: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILURE
    except Exception as exc:  # anything else: one line, no traceback, and no hang
        print(
            f"hypertab: error: could not start ({type(exc).__name__}): {exc}",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_FAILURE
    tune_gc()  # start-up is over: freeze what it made (server/gctune.py)
    tls = server.tls is not None
    url = ws_url(config.host, server.port, tls=tls)
    if port_file is not None:
        write_port_file(port_file, server.port)
    out.emit(
        "listening",
        f"hypertab listening on {url}",
        url=url,
        host=config.host,
        port=server.port,
        tls=tls,
        data_dir=str(config.data_dir),
    )
    if demo_info is not None:
        print_demo(out, *demo_info, url, config)
    await server.serve_forever(stop)
    return EXIT_OK
