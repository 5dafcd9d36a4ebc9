"""JWT expiry and in-band re-authentication, end to end."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

from identity_helpers import (
    ISSUER,
    JWT_SECRET,
    bearer,
    eventually,
    make_jwt,
    master_key_file,
    new_tenant,
    open_raw,
)
from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

from client_sdk import Client
from protocol.codec import MSGPACK, codec_for
from protocol.errors import CloseCode
from protocol.identity import Auth, Authenticated
from protocol.messages import Error, Ping, Pong
from server.app import HypertabServer
from server.config import Config

MP = codec_for(MSGPACK)


async def _ask(conn: ClientConnection, message: Any) -> Any:
    await conn.send(MP.encode(message))
    return MP.decode_server(await conn.recv(decode=False))


async def test_jwt_connection_closes_at_expiry(jwt_hub: HypertabServer, jwt_url: str) -> None:
    tenant, _ = await new_tenant(jwt_hub, "acme")
    conn, welcome = await open_raw(jwt_url, headers=bearer(make_jwt(tenant.id, lifetime=2.0)))
    assert welcome.expires_at is not None
    await asyncio.wait_for(conn.wait_closed(), 30)
    assert conn.close_code == CloseCode.AUTH_EXPIRED
    assert time.time() >= welcome.expires_at  # not before
    await eventually(lambda: len(jwt_hub.registry) == 0)


async def test_token_provider_keeps_the_connection_up_across_refreshes(
    jwt_hub: HypertabServer, jwt_url: str
) -> None:
    tenant, _ = await new_tenant(jwt_hub, "acme")
    issued = itertools.count()

    def provider() -> str:
        next(issued)
        return make_jwt(
            tenant.id,
            "alice",
            lifetime=2.0,
            app_metadata={"tenant": tenant.id, "scopes": "tables:read tables:write schema:write"},
        )

    async with await Client.connect(jwt_url, token_provider=provider) as client:
        first_expiry = client.welcome.expires_at if client.welcome else None
        table = await client.create_table("T", [("Name", "text")])
        await eventually(lambda: client.refresher.refreshes >= 3, timeout=30)
        assert client.connections == 1  # never dropped
        assert first_expiry is not None and time.time() > first_expiry  # outlived token 1
        await table.insert({"Name": "still here"})
        await client.ping()
    assert next(issued) >= 4


async def test_async_token_provider_is_used_on_reconnect(
    jwt_hub: HypertabServer, jwt_url: str
) -> None:
    tenant, _ = await new_tenant(jwt_hub, "acme")
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return make_jwt(tenant.id, "bob")

    async with await Client.connect(jwt_url, token_provider=provider, max_backoff=0.2) as client:
        assert jwt_hub.control is not None
        # drop every socket of bob's (a tenant-wide event would too): the client reconnects
        for session in jwt_hub.registry.all():
            session.close_now(CloseCode.GOING_AWAY, "test restart")
        await eventually(lambda: client.connections == 2)
        await client.ping()
    assert calls >= 2


async def test_in_band_auth_refusals_keep_the_old_credential(
    jwt_hub: HypertabServer, jwt_url: str
) -> None:
    tenant, admin_key = await new_tenant(jwt_hub, "acme")
    other, _ = await new_tenant(jwt_hub, "other")
    claims = {"tenant": tenant.id, "scopes": ["tables:read", "tables:write"]}
    conn, welcome = await open_raw(
        jwt_url, headers=bearer(make_jwt(tenant.id, "alice", lifetime=60, app_metadata=claims))
    )
    refused = {
        "another subject": make_jwt(tenant.id, "mallory", app_metadata=claims),
        "another tenant": make_jwt(other.id, "alice"),
        "fewer scopes": make_jwt(
            tenant.id, "alice", app_metadata={"tenant": tenant.id, "scopes": ["tables:read"]}
        ),
        "expired": make_jwt(tenant.id, "alice", lifetime=-1, app_metadata=claims),
        "wrong secret": make_jwt(tenant.id, "alice", secret="z" * 40, app_metadata=claims),
        "garbage": "not-a-token",
        "an api key": admin_key,
    }
    for n, (what, token) in enumerate(refused.items(), start=1):
        answer = await _ask(conn, Auth(id=n, token=token))
        assert isinstance(answer, Error) and answer.code == "auth_failed", what
        assert answer.id == n
    assert isinstance(await _ask(conn, Ping(id=99)), Pong)
    fresh = make_jwt(tenant.id, "alice", lifetime=600, app_metadata=claims)
    answer = await _ask(conn, Auth(id=100, token=fresh))
    assert isinstance(answer, Authenticated) and answer.subject == "alice"
    assert answer.expires_at is not None and welcome.expires_at is not None
    assert answer.expires_at > welcome.expires_at
    await conn.close()


async def test_api_key_sessions_cannot_reauthenticate(hub: HypertabServer, hub_url: str) -> None:
    _, key = await new_tenant(hub, "acme")
    conn, _ = await open_raw(hub_url, headers=bearer(key))
    answer = await _ask(conn, Auth(id=1, token=key))
    assert isinstance(answer, Error) and answer.code == "auth_failed"
    assert conn.state is State.OPEN
    await conn.close()


async def test_reauth_extends_past_exp_and_failure_after_exp_closes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    master_key_file(data)
    server = HypertabServer(
        Config(data_dir=data, port=0, jwt_secret=JWT_SECRET, jwt_issuer=ISSUER, jwt_leeway=2.0)
    )
    await server.start()
    try:
        url = f"ws://127.0.0.1:{server.port}/v1/ws"
        tenant, _ = await new_tenant(server, "acme")
        # 1. a fresh token sent in the grace period extends the connection past the old exp
        token = make_jwt(tenant.id, "alice", lifetime=1.0)
        conn, welcome = await open_raw(url, headers=bearer(token))
        exp = welcome.expires_at
        assert exp is not None
        await eventually(lambda: time.time() > exp + 0.1)
        answer = await _ask(conn, Auth(id=1, token=make_jwt(tenant.id, "alice", lifetime=60)))
        assert isinstance(answer, Authenticated)
        await eventually(lambda: time.time() > exp + 2.5)
        assert isinstance(await _ask(conn, Ping(id=2)), Pong)  # past old exp + leeway
        await conn.close()
        # 2. a refused token after the old one expired: error, then closed with 4001
        conn, welcome = await open_raw(url, headers=bearer(make_jwt(tenant.id, "bob", lifetime=1)))
        exp2 = welcome.expires_at
        assert exp2 is not None
        await eventually(lambda: time.time() > exp2 + 0.1)
        answer = await _ask(conn, Auth(id=1, token=make_jwt(tenant.id, "mallory")))
        assert isinstance(answer, Error) and answer.code == "auth_failed"
        await asyncio.wait_for(conn.wait_closed(), 30)
        assert conn.close_code == CloseCode.AUTH_EXPIRED
    finally:
        await server.stop()
