"""``hypertab serve``: run one hub process until SIGTERM or SIGINT.

``--demo`` makes sure a tenant named ``demo`` exists. When it is created, its API key is
printed once, with the URL. Keys are stored hashed, so later runs cannot show it again: they
say so and print the command that issues a fresh one. (Keeping the plaintext in a file next to
the database would let ``make serve`` repeat it, but would also leave a live credential on
disk; show-once is the rule for every key, the demo's included.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from server.app import WS_PATH, HypertabServer, jwt_verifier
from server.auth.apikeys import IssuedKey
from server.auth.errors import AuthConfigError
from server.auth.jwt import SUPPORTED_ALGORITHMS
from server.auth.principal import Plan
from server.broker.base import BrokerError
from server.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    CliError,
    Commands,
    data_dir,
    data_dir_parent,
    load_pepper_checked,
    now,
)
from server.cli.lifecycle import lifecycle_of
from server.config import Config
from server.control.tenants import TenantRecord
from server.dirlock import DataDirInUse
from server.lifecycle.keysource import ensure_local_key_file
from server.logs import configure_logging
from server.secrets.errors import SecretsError
from server.secrets.files import read_private_file
from server.store.schema import Durability

DEMO_TENANT = "demo"


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
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=8765, help="port to bind; 0 picks a free one (default: 8765)"
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
    serve.add_argument(
        "--log-level",
        default=os.environ.get("HYPERTAB_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="JSON logs on stderr at this level (default: $HYPERTAB_LOG_LEVEL, else INFO)",
    )
    serve.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    """``serve``: build the config, run the server under uvloop when available."""
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port {args.port} is out of range")
    config = Config(data_dir=data_dir(args), host=args.host, port=args.port)
    if args.durability is not None:
        config.durability = Durability(args.durability)
    _apply_jwt_flags(config, args)
    load_pepper_checked(config.data_dir)  # refuse a bad pepper file with one clear line
    if args.demo and (key_id := ensure_local_key_file(config.data_dir)) is not None:
        print(f"generated master key {key_id} in {config.data_dir} (mode 0600)", file=sys.stderr)
    configure_logging(args.log_level)
    return _run(_serve(config, demo=args.demo, port_file=args.port_file))


def _apply_jwt_flags(config: Config, args: argparse.Namespace) -> None:
    """Override the ``HYPERTAB_JWT_*`` settings with the flags given; check they fit."""
    if args.jwt_secret_file is not None:
        try:
            secret = read_private_file(args.jwt_secret_file)
        except SecretsError as exc:
            raise CliError(f"--jwt-secret-file: {exc}") from None
        config.jwt_secret = secret.decode("utf-8", "replace").strip()
    if args.jwt_jwks is not None:
        config.jwt_jwks = args.jwt_jwks
    if args.jwt_algorithm:
        config.jwt_algorithms = tuple(args.jwt_algorithm)
    if args.jwt_issuer is not None:
        config.jwt_issuer = args.jwt_issuer
    if args.jwt_audience is not None:
        config.jwt_audience = args.jwt_audience
    if args.jwt_leeway is not None:
        config.jwt_leeway = args.jwt_leeway
    try:
        jwt_verifier(config)  # refuse unusable settings now, with one clear line
    except AuthConfigError as exc:
        raise CliError(f"JWT settings: {exc}") from None


def _run(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(coro)
    return uvloop.run(coro)


def ws_url(host: str, port: int) -> str:
    """The WebSocket URL clients use for a bound address."""
    shown = f"[{host}]" if ":" in host else host
    return f"ws://{shown}:{port}{WS_PATH}"


def page_url(ws: str) -> str:
    """The spreadsheet page of the hub at WebSocket URL ``ws``."""
    return "http" + ws.removeprefix("ws").removesuffix(WS_PATH) + "/"


async def _ensure_demo(directory: Path) -> tuple[TenantRecord, IssuedKey | None]:
    """The demo tenant, and its key when it was created just now."""
    async with lifecycle_of(directory) as (plane, lifecycle):
        for tenant in await plane.list_tenants():
            if tenant.name == DEMO_TENANT:
                return tenant, None
        tenant, issued = await lifecycle.create_tenant(DEMO_TENANT, Plan.FREE, now=now())
        return tenant, issued


def _print_demo(tenant: TenantRecord, issued: IssuedKey | None, url: str, directory: Path) -> None:
    if issued is not None:
        print(f"demo tenant {tenant.id} created; its API key (shown once, stored hashed):")
        print(f"  {issued.secret}")
        print(f"connect: client_sdk.Client.connect({url!r}, api_key=<the key above>)")
        print(f"open in a browser: {page_url(url)}#key={issued.secret}")
        print("  (the key sits in the #fragment: browsers never send it to the server)")
    else:
        print(
            f"demo tenant {tenant.id} exists; its key was shown on first run and cannot be "
            f"shown again. New one: hypertab key create --data-dir {directory} "
            f"--tenant {DEMO_TENANT} --name demo"
        )
        print(f"open in a browser: {page_url(url)} and paste a key")
    sys.stdout.flush()


def _write_port_file(path: Path, port: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(path)


async def _serve(config: Config, *, demo: bool, port_file: Path | None) -> int:
    demo_info = await _ensure_demo(config.data_dir) if demo else None
    server = HypertabServer(config)
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
        await server.start()
    except OSError as exc:
        await _stop_quietly(server)
        print(
            f"hypertab: error: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_FAILURE
    except (SecretsError, DataDirInUse, BrokerError) as exc:  # e.g. a key readable by others
        await _stop_quietly(server)
        print(f"hypertab: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILURE
    url = ws_url(config.host, server.port)
    if port_file is not None:
        _write_port_file(port_file, server.port)
    print(f"hypertab listening on {url}", flush=True)
    if demo_info is not None:
        _print_demo(*demo_info, url, config.data_dir)
    await server.serve_forever(stop)
    return EXIT_OK


async def _stop_quietly(server: HypertabServer) -> None:
    with contextlib.suppress(Exception):
        await server.stop()
