"""The ``101`` and the welcome leave in one write, and every connection speaks through the
hub's protocol class (server/hub/connection.py).

Real hub, real sockets: the server side's transport is watched for what each call writes.
"""

from __future__ import annotations

from typing import Any

import pytest
from websockets.asyncio.client import connect

from protocol.codec import MSGPACK
from server.hub import connection as hubconn


class _WatchedTransport:
    """A transport that records every write call (one list per call) and passes it on."""

    def __init__(self, inner: Any, calls: list[list[bytes]]) -> None:
        self._inner = inner
        self._calls = calls

    def write(self, data: bytes) -> None:
        self._calls.append([bytes(data)])
        self._inner.write(data)

    def writelines(self, chunks: list[bytes]) -> None:
        self._calls.append([bytes(c) for c in chunks])
        self._inner.writelines(chunks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def server_writes(monkeypatch: pytest.MonkeyPatch) -> list[list[bytes]]:
    """Every write call of every hub connection made from now on."""
    calls: list[list[bytes]] = []
    made = hubconn.HubConnection.connection_made

    def watched(self: Any, transport: Any) -> None:
        made(self, _WatchedTransport(transport, calls))

    monkeypatch.setattr(hubconn.HubConnection, "connection_made", watched)
    return calls


async def _refused_head(
    hub_url: str, token: str, status: int, server_writes: list[list[bytes]]
) -> bytes:
    """Open with ``token``, expect ``status``; the response head the server wrote first."""
    with pytest.raises(Exception, match=str(status)):
        async with connect(hub_url, additional_headers={"Authorization": f"Bearer {token}"}):
            pass
    head = server_writes[0][0]
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    return head


async def test_upgrade_and_welcome_leave_in_one_write(
    hub: Any, hub_url: str, tenant: tuple[Any, str], server_writes: list[list[bytes]]
) -> None:
    _, key = tenant
    async with connect(
        hub_url,
        additional_headers={"Authorization": f"Bearer {key}"},
        subprotocols=[MSGPACK],  # type: ignore[list-item]
    ) as ws:
        welcome = await ws.recv()
        (conn,) = hub.registry.all()
        assert type(conn.conn.protocol) is hubconn.HubProtocol
    first = server_writes[0]
    assert first[0].startswith(b"HTTP/1.1 101 ")
    assert b"\r\nX-Content-Type-Options: nosniff\r\n" in first[0]
    assert first[0].endswith(b"\r\n\r\n")
    assert len(first) == 2, "the welcome went out in a write of its own"
    assert first[1].endswith(bytes(welcome) if isinstance(welcome, bytes) else welcome.encode())


async def test_a_refusal_is_written_at_once_with_its_headers(
    hub: Any, hub_url: str, server_writes: list[list[bytes]]
) -> None:
    head = await _refused_head(hub_url, "ht_wrong", 401, server_writes)
    assert b"\r\nContent-Security-Policy: default-src 'none'" in head
    assert b"Strict-Transport-Security" not in head  # plain HTTP: never HSTS


async def test_a_connection_lost_before_its_request_ends_its_handshake_at_once(
    hub: Any, hub_url: str, tenant: tuple[Any, str]
) -> None:
    import asyncio

    server = hub._server
    _, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    await asyncio.sleep(0.05)  # the handshake is waiting for the request
    assert len(server.handler_tasks) == 1
    writer.close()
    await writer.wait_closed()
    for _ in range(100):  # well before websockets' open_timeout (10 s)
        if not server.handler_tasks:
            break
        await asyncio.sleep(0.01)
    assert not server.handler_tasks
    _, key = tenant
    async with connect(hub_url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        assert b"welcome" in (await ws.recv()).encode()


async def test_a_failing_request_hook_answers_500_with_the_headers(
    hub: Any, hub_url: str, server_writes: list[list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(hub._gate, "check", broken)
    head = await _refused_head(hub_url, "ht_x", 500, server_writes)
    assert b"\r\nX-Frame-Options: DENY\r\n" in head
    assert b"a bug of ours" not in head
