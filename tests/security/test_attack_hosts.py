"""HT-11, DNS rebinding: a request whose ``Host`` is not one of the hub's names gets 421.

Real HTTP requests on the hub's port with a forged ``Host``. Before: any ``Host`` was
answered, so a page on a rebound name read ``/healthz``, ``/readyz`` and, from the
operator's machine, the loopback-only ``/metrics``, and its WebSocket passed the page's
same-origin rule (BR-05).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
from attack_helpers import raw_http
from test_attack_http import assert_inert

from client_sdk import Client
from server.app import HypertabServer
from server.config import Config
from server.secrets import generate_key_file

ROUTES = ("/metrics", "/healthz", "/readyz", "/", "/static/nope.js", "/nope")


def request(path: str, *hosts: str, upgrade: bool = False) -> bytes:
    lines = [f"GET {path} HTTP/1.1", *(f"Host: {h}" for h in hosts)]
    if upgrade:
        key = base64.b64encode(os.urandom(16)).decode()
        lines += ["Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}"]
        lines += ["Sec-WebSocket-Version: 13", f"Origin: http://{hosts[0]}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    "host",
    [
        "rebind.attacker.example",
        "rebind.attacker.example:8765",
        "localhost.attacker.example",
        "127.0.0.1.nip.io",
        "evil.com.",
        "LOCALHOST@evil.com",
    ],
)
async def test_a_foreign_host_gets_421_with_the_security_headers(
    hub: Any, path: str, host: str
) -> None:
    response = await raw_http(hub.port, request(path, host))
    assert (response.status, response.body) == (421, b"Unknown host.\n")
    assert_inert(response)
    assert "attacker" not in response.raw.decode("latin-1").lower()


async def test_the_websocket_upgrade_checks_the_host_too(hub: Any, tenant: Any) -> None:
    _, key = tenant
    forged = request(f"/v1/ws?token={key}", "rebind.attacker.example", upgrade=True)
    response = await raw_http(hub.port, forged)
    assert response.status == 421
    assert_inert(response)
    assert len(hub.registry) == 0


async def test_no_host_or_two_hosts_is_refused(hub: Any) -> None:
    for raw in (request("/healthz"), request("/healthz", "127.0.0.1", "evil.example")):
        response = await raw_http(hub.port, raw)
        assert response.status == 421
        assert_inert(response)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.1:{port}",
        "localhost:{port}",
        "LocalHost.",
        "[::1]:{port}",
        "app.localhost:{port}",
        "203.0.113.9:{port}",
    ],
)
async def test_loopback_names_and_ip_literals_are_answered(hub: Any, host: str) -> None:
    response = await raw_http(hub.port, request("/healthz", host.format(port=hub.port)))
    assert (response.status, response.body) == (200, b"ok\n")
    metrics = await raw_http(hub.port, request("/metrics", host.format(port=hub.port)))
    assert metrics.status == 200  # a loopback peer, a name of the hub's own


async def test_configured_names_are_answered_and_star_turns_the_check_off(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    generate_key_file(data / "master.keys")
    hosts = ("hub.example.com", "*.tables.example.org")
    server = HypertabServer(Config(data_dir=data, port=0, allowed_hosts=hosts))
    await server.start()
    try:
        for host, status in [("hub.example.com", 200), ("HUB.example.com:443", 200),
                             ("a.tables.example.org", 200), ("tables.example.org", 421),
                             ("other.example.com", 421), ("localhost", 200)]:  # fmt: skip
            response = await raw_http(server.port, request("/healthz", host))
            assert response.status == status, host
    finally:
        await server.stop()
    server = HypertabServer(Config(data_dir=data, port=0, allowed_hosts=("*",)))
    await server.start()
    try:
        response = await raw_http(server.port, request("/healthz", "anything.example"))
        assert response.status == 200
    finally:
        await server.stop()


async def test_the_sdk_still_connects_by_address(hub: Any, hub_url: str, tenant: Any) -> None:
    _, key = tenant
    async with await Client.connect(hub_url, api_key=key) as client:
        await client.create_table("T", [("A", "text")])
    url = hub_url.replace("127.0.0.1", "localhost")
    async with await Client.connect(url, api_key=key) as client:
        assert await client.list_tables()
