"""TLS on a certificate made here: the SDK connects with its CA and refuses without it; HSTS
only over TLS; behind a trusted proxy, X-Forwarded-For/-Proto are believed, from no one else."""

from __future__ import annotations

import asyncio
import http.client
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from certs import Certs, make_certs

from client_sdk import Client
from server.app import HypertabServer
from server.config import Config
from server.secrets import generate_key_file

HSTS = "Strict-Transport-Security"


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return make_certs(tmp_path)


async def _start(tmp_path: Path, **settings: Any) -> HypertabServer:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    generate_key_file(data / "master.keys")
    server = HypertabServer(Config(data_dir=data, port=0, **settings))
    await server.start()
    return server


@pytest.fixture
async def tls_hub(tmp_path: Path, certs: Certs) -> AsyncIterator[HypertabServer]:
    server = await _start(tmp_path, tls_cert=certs.cert, tls_key=certs.key)
    try:
        yield server
    finally:
        await server.stop()


def _get(port: int, headers: dict[str, str], context: ssl.SSLContext | None) -> Any:
    conn: http.client.HTTPConnection = (
        http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
        if context is not None
        else http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    )
    try:
        conn.request("GET", "/healthz", headers=headers)
        version = conn.sock.version() if isinstance(conn.sock, ssl.SSLSocket) else None
        response = conn.getresponse()
        response.read()
        return response.status, dict(response.getheaders()), version
    finally:
        conn.close()


async def test_sdk_connects_over_wss_with_the_ca_and_refuses_without(
    tls_hub: HypertabServer, certs: Certs
) -> None:
    assert tls_hub.services.lifecycle is not None
    _, issued = await tls_hub.services.lifecycle.create_tenant("acme", now=time.time())
    url = f"wss://127.0.0.1:{tls_hub.port}/v1/ws"
    async with await Client.connect(url, api_key=issued.secret, ca_file=certs.ca) as client:
        table = await client.create_table("People", [("Name", "text")])
        await table.insert({"Name": "Ada"})
        assert len(table.rows) == 1  # committed and acknowledged over wss://
    with pytest.raises(ssl.SSLCertVerificationError):
        await Client.connect(url, api_key=issued.secret, reconnect=False)  # system CAs only
    with pytest.raises(ValueError, match="wss://"):
        await Client.connect(url.replace("wss", "ws"), api_key=issued.secret, ca_file=certs.ca)


async def test_hsts_only_on_tls_responses_and_tls_1_2_at_least(
    tls_hub: HypertabServer, certs: Certs
) -> None:
    context = ssl.create_default_context(cafile=str(certs.ca))
    status, headers, version = await asyncio.to_thread(_get, tls_hub.port, {}, context)
    assert status == 200
    assert headers[HSTS].startswith("max-age=63072000")
    assert version in ("TLSv1.2", "TLSv1.3")
    assert tls_hub.tls is not None
    assert tls_hub.tls.minimum_version is ssl.TLSVersion.TLSv1_2  # nothing older is offered


async def test_forwarded_headers_count_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    for trusted, expect_ip, expect_hsts in (
        (("127.0.0.1",), "203.0.113.7", True),
        (("10.0.0.0/8",), "127.0.0.1", False),  # the peer (loopback) is not a proxy of ours
    ):
        server = await _start(tmp_path / trusted[0].replace("/", "_"), trusted_proxies=trusted)
        seen: list[str | None] = []
        server.on_auth_failure.append(lambda reason, ip, credential, seen=seen: seen.append(ip))
        try:
            _, headers, _ = await asyncio.to_thread(_get, server.port, forwarded, None)
            assert (HSTS in headers) is expect_hsts
            refused = await asyncio.to_thread(
                _ws_with_bad_key, server.port, {**forwarded, "Authorization": "Bearer nope"}
            )
            assert refused == 401
            assert seen == [expect_ip]  # audit log and the failed-handshake throttle get this
        finally:
            await server.stop()


def _ws_with_bad_key(port: int, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "GET",
            "/v1/ws",
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version": "13",
                **headers,
            },
        )
        return conn.getresponse().status
    finally:
        conn.close()
