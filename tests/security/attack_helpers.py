"""Helpers for the attack tests (docs/security.md): hubs, raw HTTP, raw WebSocket frames,
hand-made tokens. Imported as ``from attack_helpers import ...`` like the other test dirs'
helpers; no fixtures here (the shared ``hub``/``tenant`` fixtures come from tests/conftest)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import jwt as pyjwt
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from protocol.codec import MSGPACK, codec_for
from protocol.messages import Changes, PresenceEvent, ServerMessage, Welcome

JWT_SECRET = "attack-test-secret-" + "s" * 48  # 64+ bytes: long enough for HS512 too
ISSUER = "https://issuer.attack.test"
UNAUTHORIZED = (401, b"Unauthorized.\n")


def _master_keys(data_dir: Path, generate: Callable[[Path], Any]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    if not (data_dir / "master.keys").exists():
        generate(data_dir / "master.keys")


@contextlib.asynccontextmanager
async def running_hub(data_dir: Path, **config: Any) -> AsyncIterator[Any]:
    """A started hub over ``data_dir`` (master keys generated, as ``serve --demo`` does),
    with rate limits off unless ``limits=True``."""
    from server.app import HypertabServer
    from server.config import Config
    from server.secrets import generate_key_file

    limits = config.pop("limits", False)
    _master_keys(data_dir, generate_key_file)
    server = HypertabServer(Config(data_dir=data_dir, port=0, **config))
    server.admission.enabled = limits
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def ws_url(hub: Any) -> str:
    """The WebSocket URL of a running hub."""
    return f"ws://127.0.0.1:{hub.port}/v1/ws"


async def new_tenant(hub: Any, name: str, plan: Any = None) -> tuple[Any, str]:
    """A provisioned tenant and its admin key (all scopes)."""
    if plan is None:
        record, issued = await hub.services.lifecycle.create_tenant(name, now=time.time())
    else:
        record, issued = await hub.services.lifecycle.create_tenant(name, plan, now=time.time())
    return record, issued.secret


async def two_tenants(hub: Any) -> tuple[str, str, str]:
    """The hub's URL and the admin keys of two new tenants, ``alpha`` and ``beta``."""
    _, key_a = await new_tenant(hub, "alpha")
    _, key_b = await new_tenant(hub, "beta")
    return ws_url(hub), key_a, key_b


@contextlib.asynccontextmanager
async def two_tenant_clients(hub: Any) -> AsyncIterator[tuple[Any, Any]]:
    """SDK clients of two new tenants (``alpha``, ``beta``), closed on exit."""
    from client_sdk import Client

    url, key_a, key_b = await two_tenants(hub)
    async with (
        await Client.connect(url, api_key=key_a) as a,
        await Client.connect(url, api_key=key_b) as b,
    ):
        yield a, b


async def scoped_key(hub: Any, tenant: str, scopes: list[str], **kw: Any) -> str:
    """A new key of ``tenant`` with ``scopes``."""
    issued = await hub.control.create_key(
        tenant, "scoped", scopes, created_by="attack-test", now=time.time(), **kw
    )
    return str(issued.secret)


# --- tokens -------------------------------------------------------------------------------


def claims(tenant: str, sub: str = "mallory", **over: Any) -> dict[str, Any]:
    """Valid access-token claims for ``tenant``; ``over`` replaces (None deletes)."""
    now = time.time()
    payload: dict[str, Any] = {
        "sub": sub,
        "aud": "authenticated",
        "iss": ISSUER,
        "iat": int(now),
        "exp": int(now) + 300,
        "role": "authenticated",
        "app_metadata": {"tenant": tenant},
    }
    payload.update(over)
    return {k: v for k, v in payload.items() if v is not None}


def make_jwt(tenant: str, *, algorithm: str = "HS256", key: Any = JWT_SECRET, **over: Any) -> str:
    """A token signed by PyJWT with ``algorithm`` and ``key``."""
    return pyjwt.encode(claims(tenant, **over), key, algorithm=algorithm)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], payload: dict[str, Any], key: bytes, digest: Any) -> str:
    """A token HMAC-signed by hand with any header (PyJWT would refuse some of these)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{_b64(signature)}"


def bearer(token: str) -> dict[str, str]:
    """An ``Authorization`` header."""
    return {"Authorization": f"Bearer {token}"}


# --- WebSocket ----------------------------------------------------------------------------


async def refused(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    subprotocols: Sequence[str] = (MSGPACK,),
    origin: str | None = None,
) -> tuple[int, bytes]:
    """Status and body of a refused handshake; fails if it was accepted."""
    try:
        conn = await connect(
            url,
            additional_headers=headers or {},
            subprotocols=list(subprotocols),  # type: ignore[arg-type]
            origin=origin,  # type: ignore[arg-type]
            compression=None,
            open_timeout=20,
        )
    except InvalidStatus as exc:
        return exc.response.status_code, exc.response.body or b""
    await conn.close()
    raise AssertionError("the handshake was accepted")


class Wire:
    """A raw protocol connection: send Structs, dicts or bytes; read decoded answers."""

    def __init__(self, conn: ClientConnection, encoding: str, welcome: Welcome) -> None:
        self.conn = conn
        self.codec = codec_for(encoding)
        self.encoding = encoding
        self.welcome = welcome

    @classmethod
    async def open(cls, url: str, key: str, encoding: str = MSGPACK, **kw: Any) -> Wire:
        conn = await connect(
            url,
            additional_headers=bearer(key),
            subprotocols=[encoding],  # type: ignore[list-item]
            compression=kw.pop("compression", None),
            open_timeout=20,
            **kw,
        )
        codec = codec_for(encoding)
        welcome = codec.decode_server(await asyncio.wait_for(conn.recv(decode=False), 20))
        assert isinstance(welcome, Welcome)
        return cls(conn, encoding, welcome)

    async def send(self, message: Any) -> None:
        """Send a Struct or a plain dict in this connection's encoding."""
        await self.conn.send(self.codec.encode(message), text=not self.codec.binary)

    async def recv(self, timeout: float = 20.0) -> ServerMessage:
        data = await asyncio.wait_for(self.conn.recv(decode=False), timeout)
        return self.codec.decode_server(data)

    async def answer(self, timeout: float = 20.0) -> ServerMessage:
        """The next message that is not a broadcast."""
        while True:
            message = await self.recv(timeout)
            if not isinstance(message, Changes | PresenceEvent):
                return message

    async def close(self) -> None:
        await self.conn.close()


async def closed_with(conn: ClientConnection, timeout: float = 20.0) -> int | None:
    """Read until the server closes; the close code it sent."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout):
            while True:
                await conn.recv(decode=False)
    assert conn.close_code is not None, "the server did not close the connection"
    return conn.close_code


# --- raw HTTP -----------------------------------------------------------------------------


def upgrade_request(
    path: str = "/v1/ws", headers: Sequence[tuple[str, str]] = (), method: str = "GET"
) -> bytes:
    """A WebSocket upgrade request, byte for byte, with extra ``headers``."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RawResponse:
    """A parsed HTTP response head (headers lower-cased, repeated ones kept) and body."""

    def __init__(self, data: bytes) -> None:
        self.raw = data
        head, _, self.body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines and lines[0] else 0
        self.headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.setdefault(name.strip().lower(), []).append(value.strip())

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


def _exchange(port: int, request: bytes, timeout: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        out = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            out += chunk
            head, sep, body = out.partition(b"\r\n\r\n")
            if sep and b" 101 " in head.split(b"\r\n", 1)[0]:
                break  # upgraded: the server now speaks WebSocket
            length = RawResponse(out).header("content-length")
            if sep and length is not None and len(body) >= int(length):
                break
    return out


async def raw_http(port: int, request: bytes, timeout: float = 10.0) -> RawResponse:
    """Send raw request bytes to 127.0.0.1:``port``; the response (status 0 if none)."""
    return RawResponse(await asyncio.to_thread(_exchange, port, request, timeout))


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0) -> None:
    """Wait until ``check()`` holds (a failure guard, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)
