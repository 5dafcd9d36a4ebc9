"""Helpers for the identity tests: tokens, raw handshakes, tenants, waiting without sleeps."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import jwt as pyjwt
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from protocol.codec import JSON, MSGPACK, codec_for
from protocol.messages import Welcome

JWT_SECRET = "identity-test-secret-" + "s" * 32
ISSUER = "https://issuer.test"


def make_jwt(
    tenant: str,
    sub: str = "user-1",
    *,
    lifetime: float = 300.0,
    secret: str = JWT_SECRET,
    **claims: Any,
) -> str:
    """An HS256 access token for ``tenant``; ``claims`` override or add (None deletes)."""
    now = time.time()
    payload: dict[str, Any] = {
        "sub": sub,
        "aud": "authenticated",
        "iss": ISSUER,
        "iat": int(now),
        "exp": now + lifetime,
        "role": "authenticated",
        "app_metadata": {"tenant": tenant},
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return pyjwt.encode(payload, secret, algorithm="HS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made_jwt(header: dict[str, Any], payload: dict[str, Any], key: bytes | None) -> str:
    """A token signed by hand (``alg: none`` or an HMAC with any key, PEMs included)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if key is None:
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


async def open_raw(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    subprotocols: Sequence[str] = (MSGPACK,),
    origin: str | None = None,
) -> tuple[ClientConnection, Welcome]:
    """An accepted raw connection and its welcome."""
    conn = await connect(
        url,
        additional_headers=headers or {},
        subprotocols=list(subprotocols),  # type: ignore[arg-type]
        origin=origin,  # type: ignore[arg-type]
        compression=None,
        open_timeout=20,
    )
    codec = codec_for(conn.subprotocol or JSON)
    welcome = codec.decode_server(await conn.recv(decode=False))
    assert isinstance(welcome, Welcome)
    return conn, welcome


async def refusal(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    subprotocols: Sequence[str] = (MSGPACK,),
    origin: str | None = None,
) -> tuple[int, bytes]:
    """The HTTP status and body of a refused handshake (fails if it was accepted)."""
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


def master_key_file(data_dir: Path) -> None:
    """Give ``data_dir`` master keys, as the shared ``hub`` fixture does (when available)."""
    try:
        from server.secrets import generate_key_file  # type: ignore[attr-defined]
    except ImportError:
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    if not (data_dir / "master.keys").exists():
        generate_key_file(data_dir / "master.keys")


async def new_tenant(hub: Any, name: str) -> tuple[Any, str]:
    """A provisioned tenant on ``hub`` and its admin key (like the ``tenant`` fixture)."""
    lifecycle = getattr(hub.services, "lifecycle", None)
    if lifecycle is not None:
        record, issued = await lifecycle.create_tenant(name, now=time.time())
    else:
        record, issued = await hub.control.create_tenant(name, now=time.time())
    return record, issued.secret
