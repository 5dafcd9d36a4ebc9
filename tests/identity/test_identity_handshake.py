"""Handshake: every refused credential gets the same 401 and opens nothing; browsers,
origins, query strings and the per-principal connection cap."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from identity_helpers import (
    ISSUER,
    bearer,
    eventually,
    hand_made_jwt,
    make_jwt,
    master_key_file,
    new_tenant,
    open_raw,
    refusal,
)

from protocol.codec import AUTH_SUBPROTOCOL_PREFIX, JSON, MSGPACK
from server.app import HypertabServer
from server.auth import apikeys
from server.auth.ids import new_key_id, new_tenant_id
from server.config import Config
from server.control.origins import TenantOrigins

UNAUTHORIZED = b"Unauthorized.\n"

Make = Callable[[HypertabServer, str, str], Awaitable[dict[str, str]]]


async def _none(hub: HypertabServer, tenant: str, key: str) -> dict[str, str]:
    return {}


async def _bad_checksum(hub: HypertabServer, tenant: str, key: str) -> dict[str, str]:
    last = "A" if key[-1] != "A" else "B"
    return bearer(key[:-1] + last)


async def _wrong_environment(hub: HypertabServer, tenant: str, key: str) -> dict[str, str]:
    body = key[: -apikeys.CHECKSUM_LENGTH].replace("ht_live_", "ht_test_", 1)
    return bearer(body + apikeys.checksum(body))


async def _wrong_prefix(hub: HypertabServer, tenant: str, key: str) -> dict[str, str]:
    return bearer("hx_live_" + key[len("ht_live_") :])


async def _unknown_key(hub: HypertabServer, tenant: str, key: str) -> dict[str, str]:
    return bearer(apikeys.format_key("live", new_key_id(), apikeys.new_secret()))


async def _revoked_key(hub: HypertabServer, tenant: str, key: str) -> dict[str, str]:
    assert hub.control is not None
    issued = await hub.control.create_key(
        tenant, "gone", ["tables:read"], created_by="test", now=time.time()
    )
    await hub.control.revoke_key(issued.record.id, now=time.time())
    return bearer(issued.secret)


async def _expired_key(hub: HypertabServer, tenant: str, key: str) -> dict[str, str]:
    assert hub.control is not None
    then = time.time() - 60
    issued = await hub.control.create_key(
        tenant, "old", ["tables:read"], expires_at=then + 1, created_by="test", now=then
    )
    return bearer(issued.secret)


async def _jwt_wrong_secret(hub: HypertabServer, tenant: str, key: str) -> dict[str, str]:
    return bearer(make_jwt(tenant, secret="another-secret-" + "x" * 40))


async def _jwt_alg_none(hub: HypertabServer, tenant: str, key: str) -> dict[str, str]:
    now = time.time()
    payload = {
        "sub": "u",
        "aud": "authenticated",
        "iss": ISSUER,
        "iat": int(now),
        "exp": now + 300,
        "app_metadata": {"tenant": tenant},
    }
    return bearer(hand_made_jwt({"alg": "none", "typ": "JWT"}, payload, None))


async def _jwt_public_key_as_secret(hub: HypertabServer, tenant: str, key: str) -> dict[str, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = time.time()
    payload = {
        "sub": "u",
        "aud": "authenticated",
        "iss": ISSUER,
        "iat": int(now),
        "exp": now + 300,
        "app_metadata": {"tenant": tenant},
    }
    return bearer(hand_made_jwt({"alg": "HS256", "typ": "JWT"}, payload, pem))


async def _jwt_expired(hub: HypertabServer, tenant: str, key: str) -> dict[str, str]:
    return bearer(make_jwt(tenant, lifetime=-5, iat=int(time.time()) - 60))


async def _jwt_future_nbf(hub: HypertabServer, tenant: str, key: str) -> dict[str, str]:
    return bearer(make_jwt(tenant, nbf=int(time.time()) + 120))


async def _jwt_missing_exp(hub: HypertabServer, tenant: str, key: str) -> dict[str, str]:
    return bearer(make_jwt(tenant, exp=None))


async def _jwt_wrong_aud(hub: HypertabServer, tenant: str, key: str) -> dict[str, str]:
    return bearer(make_jwt(tenant, aud="someone-else"))


async def _jwt_wrong_iss(hub: HypertabServer, tenant: str, key: str) -> dict[str, str]:
    return bearer(make_jwt(tenant, iss="https://evil.test"))


async def _jwt_anon(hub: HypertabServer, tenant: str, key: str) -> dict[str, str]:
    return bearer(make_jwt(tenant, role="anon"))


async def _jwt_unknown_tenant(hub: HypertabServer, tenant: str, key: str) -> dict[str, str]:
    return bearer(make_jwt(new_tenant_id()))


async def _jwt_deleted_tenant(hub: HypertabServer, tenant: str, key: str) -> dict[str, str]:
    assert hub.control is not None
    other, _ = await new_tenant(hub, "doomed")
    token = make_jwt(other.id)
    await hub.control.delete_tenant(other.id, now=time.time())
    return bearer(token)


REFUSED: dict[str, Make] = {
    "no_credential": _none,
    "bad_checksum": _bad_checksum,
    "wrong_prefix": _wrong_prefix,
    "wrong_environment": _wrong_environment,
    "unknown_key": _unknown_key,
    "revoked_key": _revoked_key,
    "expired_key": _expired_key,
    "jwt_wrong_secret": _jwt_wrong_secret,
    "jwt_alg_none": _jwt_alg_none,
    "jwt_public_key_as_hmac_secret": _jwt_public_key_as_secret,
    "jwt_expired": _jwt_expired,
    "jwt_future_nbf": _jwt_future_nbf,
    "jwt_missing_exp": _jwt_missing_exp,
    "jwt_wrong_aud": _jwt_wrong_aud,
    "jwt_wrong_iss": _jwt_wrong_iss,
    "jwt_anon_role": _jwt_anon,
    "jwt_unknown_tenant": _jwt_unknown_tenant,
    "jwt_deleted_tenant": _jwt_deleted_tenant,
}


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_refused_with_the_same_answer_and_nothing_opened(
    case: str, jwt_hub: HypertabServer, jwt_url: str
) -> None:
    tenant, key = await new_tenant(jwt_hub, "acme")
    headers = await REFUSED[case](jwt_hub, tenant.id, key)
    failures: list[tuple[str, str | None, str | None]] = []
    jwt_hub.on_auth_failure.append(lambda *args: failures.append(args))
    stores_before = jwt_hub.stores.open_count
    status, body = await refusal(jwt_url, headers=headers)
    assert (status, body) == (401, UNAUTHORIZED)
    assert len(jwt_hub.registry) == 0
    assert jwt_hub.stores.open_count == stores_before
    # the reason reaches the hook (for the audit log), never the client
    assert len(failures) == 1
    reason, ip, _ = failures[0]
    assert reason and ip == "127.0.0.1"
    secret = headers.get("Authorization", "Bearer -").split(" ", 1)[1]
    assert all(secret not in str(part) for part in failures[0])
    # and the real key still works on the same server
    conn, welcome = await open_raw(jwt_url, headers=bearer(key))
    assert welcome.tenant == tenant.id
    await conn.close()


async def test_valid_jwt_is_accepted(jwt_hub: HypertabServer, jwt_url: str) -> None:
    tenant, _ = await new_tenant(jwt_hub, "acme")
    conn, welcome = await open_raw(jwt_url, headers=bearer(make_jwt(tenant.id, "alice")))
    assert (welcome.tenant, welcome.subject) == (tenant.id, "alice")
    assert welcome.expires_at is not None
    await conn.close()


async def test_token_in_query_string_is_refused_and_never_logged(
    hub: HypertabServer, hub_url: str, tenant: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _, key = tenant
    caplog.set_level(logging.DEBUG)
    status, _ = await refusal(f"{hub_url}?access_token={key}")
    assert status == 400
    # even with a valid header, a query string is refused
    status, _ = await refusal(f"{hub_url}?token={key}", headers=bearer(key))
    assert status == 400
    # nor in a bearer subprotocol entry (accepted, but never logged either)
    conn, _ = await open_raw(hub_url, subprotocols=[JSON, AUTH_SUBPROTOCOL_PREFIX + key])
    await conn.close()
    await eventually(lambda: len(hub.registry) == 0)
    # every record the server wrote (the test's own client logs its request: not ours)
    logged = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith("websockets.client")
    )
    assert "GET /v1/ws?[REDACTED]" in logged  # the websockets debug lines, filtered
    assert "Authorization: [REDACTED]" in logged
    assert key not in logged
    assert key[len("ht_live_") :][:20] not in logged


async def test_browser_subprotocol_auth_echoes_only_the_protocol(
    hub: HypertabServer, hub_url: str, tenant: Any
) -> None:
    record, key = tenant
    conn, welcome = await open_raw(hub_url, subprotocols=[JSON, AUTH_SUBPROTOCOL_PREFIX + key])
    assert welcome.tenant == record.id
    assert conn.subprotocol == JSON
    assert conn.response is not None
    assert conn.response.headers.get_all("Sec-WebSocket-Protocol") == [JSON]
    assert all(key not in value for value in conn.response.headers.values())
    await conn.close()


async def test_two_bearer_entries_are_refused(hub_url: str, tenant: Any) -> None:
    _, key = tenant
    status, body = await refusal(
        hub_url,
        subprotocols=[JSON, AUTH_SUBPROTOCOL_PREFIX + key, AUTH_SUBPROTOCOL_PREFIX + key],
    )
    assert (status, body) == (401, UNAUTHORIZED)


ALLOWED = "https://app.example.com"
NOT_ALLOWED = [
    "https://app.example.com.evil.net",  # look-alike: suffix
    "https://evilapp.example.com",  # look-alike: prefix
    "https://app-example.com",
    "https://app.example.co",
    "http://app.example.com",  # other scheme
    "wss://app.example.com",
    "chrome-extension://app.example.com",
    "https://app.example.com:8443",  # other port
    "https://APP.EXAMPLE.COM",  # not the serialised form a browser sends
    "https://app.example.com/",
    "null",
]


async def test_browser_origin_must_be_on_the_tenant_allowlist(
    hub: HypertabServer, hub_url: str, tenant: Any
) -> None:
    record, key = tenant
    assert hub.control is not None
    origins = await TenantOrigins.open(hub.control)
    await origins.change(record.id, add=[ALLOWED], now=time.time())
    browser = [JSON, AUTH_SUBPROTOCOL_PREFIX + key]
    conn, welcome = await open_raw(hub_url, subprotocols=browser, origin=ALLOWED)
    assert welcome.tenant == record.id
    await conn.close()
    for origin in NOT_ALLOWED:
        status, body = await refusal(hub_url, subprotocols=browser, origin=origin)
        assert status == 403 and body.startswith(b"Origin not allowed.\n"), origin
    # another tenant's allowlist does not open this one
    _, other_key = await new_tenant(hub, "other")
    status, _ = await refusal(
        hub_url, subprotocols=[JSON, AUTH_SUBPROTOCOL_PREFIX + other_key], origin=ALLOWED
    )
    assert status == 403
    # requests without Origin are API clients
    conn, _ = await open_raw(hub_url, headers=bearer(other_key))
    await conn.close()
    # removal applies to the next handshake
    await origins.change(record.id, remove=[ALLOWED], now=time.time())
    status, _ = await refusal(hub_url, subprotocols=browser, origin=ALLOWED)
    assert status == 403
    await eventually(lambda: len(hub.registry) == 0)


async def test_global_allowlist(tmp_path: Path) -> None:
    data = tmp_path / "data"
    master_key_file(data)
    server = HypertabServer(
        Config(data_dir=data, port=0, allowed_origins=("HTTPS://Global.Example:443",))
    )
    await server.start()
    try:
        url = f"ws://127.0.0.1:{server.port}/v1/ws"
        _, key = await new_tenant(server, "acme")
        conn, _ = await open_raw(url, headers=bearer(key), origin="https://global.example")
        await conn.close()
        status, _ = await refusal(url, headers=bearer(key), origin="https://global.example.org")
        assert status == 403
    finally:
        await server.stop()


async def test_connection_cap_per_principal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    master_key_file(data)
    server = HypertabServer(Config(data_dir=data, port=0, max_connections_per_credential=3))
    await server.start()
    try:
        url = f"ws://127.0.0.1:{server.port}/v1/ws"
        _, key = await new_tenant(server, "acme")
        _, other = await new_tenant(server, "other")
        conns = [(await open_raw(url, headers=bearer(key)))[0] for _ in range(3)]
        status, _ = await refusal(url, headers=bearer(key))
        assert status == 429
        extra, _ = await open_raw(url, headers=bearer(other))  # another principal is not capped
        await conns.pop().close()
        await eventually(lambda: len(server.registry.of_credential(key.split("_")[2])) == 2)
        again, _ = await open_raw(url, headers=bearer(key))
        for conn in [*conns, extra, again]:
            await conn.close()
    finally:
        await server.stop()


def test_max_connections_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERTAB_MAX_CONNECTIONS_PER_CREDENTIAL", "7")
    assert Config().max_connections_per_credential == 7
    assert MSGPACK  # the SDK's default encoding stays negotiable
