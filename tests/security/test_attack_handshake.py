"""Attacks on the WebSocket handshake (docs/security.md, HS-*): each one is refused before
the upgrade, opens no tenant database, and leaves the server serving the next client."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from attack_helpers import (
    ISSUER,
    JWT_SECRET,
    UNAUTHORIZED,
    Wire,
    bearer,
    claims,
    eventually,
    hand_signed,
    make_jwt,
    new_tenant,
    raw_http,
    refused,
    running_hub,
    upgrade_request,
    ws_url,
)
from cryptography.hazmat.primitives.asymmetric import rsa

from protocol.codec import AUTH_SUBPROTOCOL_PREFIX, JSON, MSGPACK
from server.control.origins import TenantOrigins


@pytest.fixture
async def jwt_hub(tmp_path: Path) -> AsyncIterator[Any]:
    """A hub accepting HS256 JWTs (issuer checked, no leeway)."""
    async with running_hub(
        tmp_path / "jwt", jwt_secret=JWT_SECRET, jwt_issuer=ISSUER, jwt_leeway=0.0
    ) as server:
        yield server


async def _nothing_opened(hub: Any, stores_before: int) -> None:
    assert len(hub.registry) == 0
    assert hub.stores.open_count == stores_before


async def test_hs07_jwt_unconfigured_algorithm_refused(jwt_hub: Any) -> None:
    url = ws_url(jwt_hub)
    tenant, _ = await new_tenant(jwt_hub, "acme")
    stores = jwt_hub.stores.open_count
    attacker_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tokens = [
        make_jwt(tenant.id, algorithm="HS512"),  # the right secret, an unlisted algorithm
        make_jwt(tenant.id, algorithm="HS384"),
        make_jwt(tenant.id, algorithm="RS256", key=attacker_rsa),  # the attacker's own key
        hand_signed(
            {"alg": "hs256", "typ": "JWT"}, claims(tenant.id), JWT_SECRET.encode(), hashlib.sha256
        ),
    ]
    for token in tokens:
        assert await refused(url, headers=bearer(token)) == UNAUTHORIZED
    await _nothing_opened(jwt_hub, stores)
    conn = await Wire.open(url, make_jwt(tenant.id))  # the configured algorithm still works
    assert conn.welcome.subject == "mallory"
    await conn.close()


@pytest.mark.parametrize(
    "tenant_claim",
    ["../../control", "..", "acme/../../x", "/etc/passwd", "ACME" * 4, "a" * 33, "", 42, None],
)
async def test_hs11_jwt_tenant_claim_cannot_name_a_path(jwt_hub: Any, tenant_claim: Any) -> None:
    stores = jwt_hub.stores.open_count
    token = make_jwt("x", app_metadata={"tenant": tenant_claim})
    assert await refused(ws_url(jwt_hub), headers=bearer(token)) == UNAUTHORIZED
    await _nothing_opened(jwt_hub, stores)
    assert not (Path(jwt_hub.config.data_dir).parent / "control").exists()


async def test_hs14_two_authorization_headers_refused(hub: Any, tenant: Any) -> None:
    _, key = tenant
    stores = hub.stores.open_count
    # two valid copies, or a valid one next to junk: the server never guesses which one
    for second in (key, "ht_live_junk"):
        request = upgrade_request(
            headers=[("Authorization", f"Bearer {key}"), ("Authorization", f"Bearer {second}")]
        )
        response = await raw_http(hub.port, request)
        assert (response.status, response.body) == UNAUTHORIZED
    await _nothing_opened(hub, stores)


@pytest.mark.parametrize("scheme", ["Basic", "Token", "bearer:", "Bearer\t", "Digest"])
async def test_hs15_non_bearer_scheme_is_no_credential(hub: Any, tenant: Any, scheme: str) -> None:
    _, key = tenant
    status, body = await refused(ws_url(hub), headers={"Authorization": f"{scheme} {key}"})
    assert (status, body) == UNAUTHORIZED


async def test_hs16_oversized_credential_is_malformed(hub: Any, tenant: Any) -> None:
    _, key = tenant
    failures: list[tuple[Any, ...]] = []
    hub.on_auth_failure.append(lambda *args: failures.append(args))
    for token in ("ht_live_" + "a" * 7000, key + "x" * 7000, "e" * 7000 + "." + "f" * 10):
        assert await refused(ws_url(hub), headers=bearer(token)) == UNAUTHORIZED
    assert [reason for reason, _, _ in failures] == ["malformed"] * 3
    assert all(credential is None for _, _, credential in failures)


async def test_hs17_oversized_handshake_headers_refused(hub: Any, tenant: Any) -> None:
    _, key = tenant
    auth = ("Authorization", f"Bearer {key}")
    attempts = [
        upgrade_request(headers=[("X-Big", "a" * 70_000), auth]),  # one line over 8 KiB
        upgrade_request(headers=[*((f"X-{i}", "1") for i in range(300)), auth]),  # > 128
        upgrade_request(path="/v1/ws" + "/a" * 5000, headers=[auth]),  # request line
    ]
    for request in attempts:
        response = await raw_http(hub.port, request)
        assert response.status in (414, 431), response.raw[:200]
    assert len(hub.registry) == 0 and hub.stores.open_count == 0
    conn = await Wire.open(ws_url(hub), key)  # and the server serves the next client
    await conn.close()


async def test_hs18_many_subprotocols_echo_only_the_encoding(hub: Any, tenant: Any) -> None:
    _, key = tenant
    offered = [f"junk.{i}" for i in range(400)] + [JSON, AUTH_SUBPROTOCOL_PREFIX + key]
    request = upgrade_request(headers=[("Sec-WebSocket-Protocol", ", ".join(offered))])
    response = await raw_http(hub.port, request)
    assert response.status == 101
    assert response.headers["sec-websocket-protocol"] == [JSON]
    assert key not in response.raw.decode("latin-1")
    # offering the bearer entry many times is ambiguous, not "the first one wins"
    many = [MSGPACK, *(AUTH_SUBPROTOCOL_PREFIX + key for _ in range(50))]
    assert await refused(ws_url(hub), subprotocols=many) == UNAUTHORIZED


@pytest.mark.parametrize(
    "origins",
    [
        ["https://app.example.com", "https://app.example.com"],  # two headers
        ["https://app.example.com, https://evil.example"],  # a list in one header
        ["https://user@app.example.com"],  # user info
        ["https://app.example.com/path"],  # a path
        ["https://app.example.com:443@evil.example"],
        ["file://"],
        ["https://app.example.com\tx"],
    ],
)
async def test_hs21_ambiguous_or_decorated_origins_refused(
    hub: Any, tenant: Any, origins: list[str]
) -> None:
    record, key = tenant
    allowlist = await TenantOrigins.open(hub.control)
    await allowlist.change(record.id, add=["https://app.example.com"], now=0.0)
    headers = [("Authorization", f"Bearer {key}"), *(("Origin", o) for o in origins)]
    response = await raw_http(hub.port, upgrade_request(headers=headers))
    assert (response.status, response.body) == (403, b"Origin not allowed.\n")
    assert len(hub.registry) == 0
    good = [("Authorization", f"Bearer {key}"), ("Origin", "https://app.example.com")]
    assert (await raw_http(hub.port, upgrade_request(headers=good))).status == 101


async def test_hs22_upgrade_only_on_the_exact_path(hub: Any, tenant: Any) -> None:
    _, key = tenant
    auth = [("Authorization", f"Bearer {key}")]
    for path in ("/v1/ws/", "//v1/ws", "/V1/WS", "/v1/ws;x", "/v1/ws%3Ftoken", "/v1/./ws", "/"):
        response = await raw_http(hub.port, upgrade_request(path=path, headers=auth))
        assert response.status == (200 if path == "/" else 404), path  # "/": the page, no 101
    assert len(hub.registry) == 0 and hub.stores.open_count == 0


async def test_hs23_non_get_upgrade_refused(hub: Any, tenant: Any) -> None:
    _, key = tenant
    auth = [("Authorization", f"Bearer {key}")]
    for method in ("POST", "PUT", "CONNECT", "OPTIONS"):
        response = await raw_http(hub.port, upgrade_request(headers=auth, method=method))
        assert response.status in (400, 405), method
    await eventually(lambda: len(hub.registry) == 0)
    assert hub.stores.open_count == 0
