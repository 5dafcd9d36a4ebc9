"""Attacks on the plain HTTP surface of the hub's port (docs/security.md, HT-*): answers are
fixed texts with every security header, reflect nothing, and ``/metrics`` opens only to the
real TCP peer or the token and names no tenant, table or credential."""

from __future__ import annotations

import time
from typing import Any

import pytest
from attack_helpers import RawResponse, Wire, new_tenant, raw_http, upgrade_request, ws_url

from client_sdk import Client
from server.http.headers import security_headers

EXPECTED = security_headers(https=False)  # plain HTTP here: no HSTS (tests/ops/test_ops_tls.py)
REFLECTED = "<script>alert(1)</script>"


def assert_inert(response: RawResponse) -> None:
    """Every security header exactly once, a plain-text body, nothing reflected."""
    for name, value in EXPECTED.items():
        assert response.headers.get(name.lower()) == [value], name
    assert response.header("content-type") == "text/plain; charset=utf-8"
    assert "server" not in response.headers
    body = response.body.decode("latin-1")
    assert "script" not in body.lower() and "Traceback" not in body


def get(path: str, *headers: tuple[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/{REFLECTED}", 404),
        ("/%3Cscript%3Ealert(1)%3C/script%3E", 404),
        (f"/healthz?x={REFLECTED}", 200),
        (f"/v1/ws?token={REFLECTED}", 400),
        ("/../../etc/passwd", 404),
    ],
)
async def test_ht04_error_pages_reflect_nothing(hub: Any, path: str, status: int) -> None:
    extra = ("Referer", REFLECTED)
    request = upgrade_request(path, [extra]) if path.startswith("/v1/ws") else get(path, extra)
    response = await raw_http(hub.port, request)
    assert response.status == status
    assert_inert(response)


async def test_ht05_oversized_request_answers_carry_the_security_headers(
    hub: Any, tenant: Any
) -> None:
    _, key = tenant
    for request in (
        upgrade_request(headers=[("X-Big", "a" * 70_000), ("Authorization", f"Bearer {key}")]),
        upgrade_request(headers=[(f"X-{i}", "1") for i in range(200)]),
        get("/healthz" + "?a" * 5000),
    ):
        response = await raw_http(hub.port, request)
        assert response.status in (414, 431)
        for name, value in EXPECTED.items():  # websockets' own answers, not ours: still
            assert response.headers.get(name.lower()) == [value], name


@pytest.mark.parametrize(
    "forged",
    [
        ("X-Forwarded-For", "10.9.9.9"),
        ("X-Real-IP", "10.9.9.9"),
        ("Forwarded", "for=10.9.9.9"),
        ("X-Forwarded-For", "127.0.0.1, 10.9.9.9"),
        ("Authorization", "Bearer "),
        ("Authorization", "Basic c2NyYXBlcjpzM2NyZXQ="),
    ],
)
async def test_ht07_forwarded_headers_do_not_open_metrics(
    hub: Any, forged: tuple[str, str]
) -> None:
    seen: list[str | None] = []

    def only_the_scraper(host: str | None) -> bool:  # trust one scraper address, not us
        seen.append(host)
        return host == "10.9.9.9"

    hub.http.peer_allowed = only_the_scraper
    response = await raw_http(hub.port, get("/metrics", forged))
    assert (response.status, response.body) == (403, b"Forbidden.\n")
    assert_inert(response)
    assert seen == ["127.0.0.1"]  # the decision saw the TCP peer, never a header


async def test_ht08_metrics_expose_no_identifiers_or_secrets(hub: Any) -> None:
    record, key = await new_tenant(hub, "Secret Corp")
    other = await hub.control.create_key(
        record.id, "ci-bot", ["tables:read"], created_by="alice@secret.example", now=time.time()
    )
    async with await Client.connect(ws_url(hub), api_key=key) as client:
        table = await client.create_table("Payroll 2026", [("Salary", "number")])
        await table.insert({"Salary": 123456})
        await client.secrets.set("STRIPE_KEY", "sk_live_metrics_must_not_show_1", kind="env_var")
    wire = await Wire.open(ws_url(hub), other.secret)
    await wire.close()
    await raw_http(hub.port, upgrade_request(headers=[("Authorization", f"Bearer {key}x")]))
    response = await raw_http(hub.port, get("/metrics"))
    assert response.status == 200
    text = response.body.decode()
    assert "hypertab_connections" in text
    key_id = key.split("_")[2]
    for needle in (
        record.id,
        "Secret Corp",
        "Payroll",
        "Salary",
        "123456",
        "STRIPE",
        "sk_live_metrics",
        key_id,
        other.record.id,
        "ci-bot",
        "alice@",
        "127.0.0.1",
    ):
        assert needle not in text, needle


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 38\r\n\r\n"
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\nhello",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n"
        b"\r\n0\r\n\r\n",
    ],
    ids=["chunked", "smuggled-body", "two-lengths", "te-and-cl"],
)
async def test_ht09_requests_with_bodies_are_dropped(
    hub: Any, tenant: Any, request_bytes: bytes
) -> None:
    _, key = tenant
    response = await raw_http(hub.port, request_bytes)
    assert response.status == 0 and response.raw == b""  # closed without an answer
    assert len(hub.registry) == 0
    wire = await Wire.open(ws_url(hub), key)  # and the port serves the next client
    await wire.close()


async def test_ht10_plain_routes_answer_only_get(hub: Any) -> None:
    for method in ("TRACE", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"):
        for path in ("/healthz", "/metrics", "/readyz", "/nope"):
            request = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
            response = await raw_http(hub.port, request)
            assert (response.status, response.body) == (405, b"Method not allowed.\n"), method
            assert response.header("allow") == "GET"
            assert_inert(response)
