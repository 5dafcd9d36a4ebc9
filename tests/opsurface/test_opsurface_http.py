"""The HTTP surface: every path's status and headers, and who may read ``/metrics``."""

from __future__ import annotations

import asyncio
import http.client
import socket
import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from client_sdk import Client
from server.http.headers import security_headers
from server.hub.httproutes import is_loopback

EXPECTED = {k: v for k, v in security_headers(https=False).items()}
"""Over plain HTTP: every security header but HSTS (tests/ops/test_ops_tls.py: over TLS)."""


def _get(
    host: str,
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
    source: str | None = None,
) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection(
        host, port, timeout=10, source_address=(source, 0) if source else None
    )
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


async def get(hub: Any, path: str, **kwargs: Any) -> tuple[int, dict[str, str], str]:
    """GET ``path`` from the hub (in a thread: http.client blocks)."""
    host = kwargs.pop("host", "127.0.0.1")
    return await asyncio.to_thread(_get, host, hub.port, path, **kwargs)


def assert_locked_down(headers: dict[str, str], body: str) -> None:
    """Every security header with its exact value; no banner, no stack trace."""
    for name, value in EXPECTED.items():
        assert headers.get(name) == value, name
    assert "Strict-Transport-Security" not in headers  # never over plain HTTP
    assert "Server" not in headers
    assert "Traceback" not in body and 'File "' not in body


async def _handshake(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    try:
        async with connect(url, additional_headers=headers):
            return 101, {}, ""
    except InvalidStatus as exc:
        r = exc.response
        return r.status_code, dict(r.headers.raw_items()), r.body.decode() if r.body else ""


async def test_every_path_returns_every_security_header(
    hub: Any, hub_url: str, tenant: Any
) -> None:
    _, key = tenant
    seen: dict[int, int] = {}
    for path, status in [("/healthz", 200), ("/readyz", 200), ("/metrics", 200), ("/nope", 404)]:
        code, headers, body = await get(hub, path)
        assert code == status, path
        assert_locked_down(headers, body)
        seen[code] = seen.get(code, 0) + 1
    code, headers, body = await _handshake(hub_url, {"Authorization": "Bearer ht_live_nope"})
    assert code == 401
    assert_locked_down(headers, body)
    code, headers, body = await _handshake(hub_url + "?token=x", {})
    assert code == 400
    assert_locked_down(headers, body)
    hub.http.peer_allowed = lambda host: False  # as if from elsewhere
    code, headers, body = await get(hub, "/metrics")
    assert code == 403
    assert_locked_down(headers, body)
    hub.admission.enabled = True
    hub.admission.settings.auth_failures = 1
    for _ in range(2):  # the second failure is over the limit of 1
        await _handshake(hub_url, {"Authorization": "Bearer ht_live_nope"})
    code, headers, body = await _handshake(hub_url, {"Authorization": f"Bearer {key}"})
    assert code == 429
    assert_locked_down(headers, body)
    assert int(headers["Retry-After"]) >= 1


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address: str = s.getsockname()[0]
    return None if is_loopback(address) else address


async def test_metrics_from_a_non_loopback_peer_need_the_token(tmp_path: Any) -> None:
    from server.app import HypertabServer
    from server.config import Config

    address = _non_loopback_address()
    if address is None:
        pytest.skip("no non-loopback IPv4 address on this host")
    server = HypertabServer(
        Config(data_dir=tmp_path / "d", host=address, port=0, metrics_token="s3cret-metrics")
    )
    await server.start()
    try:
        code, headers, body = await get(server, "/metrics", host=address, source=address)
        assert code == 403  # the peer is the real remote_address, not loopback
        assert_locked_down(headers, body)
        code, _, _ = await get(
            server, "/metrics", host=address, headers={"Authorization": "Bearer wrong"}
        )
        assert code == 403
        auth = {"Authorization": "Bearer s3cret-metrics"}
        code, headers, body = await get(server, "/metrics", host=address, headers=auth)
        assert code == 200 and "hypertab_connections" in body
        assert_locked_down(headers, body)
        code, _, _ = await get(server, "/healthz", host=address)
        assert code == 200
    finally:
        await server.stop()


def test_the_loopback_decision() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.0.0.2") and is_loopback("::1")
    assert is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("192.0.2.2") and not is_loopback("::ffff:10.0.0.1")
    assert not is_loopback(None) and not is_loopback("localhost")


async def test_metrics_count_the_hub_traffic(hub: Any, hub_url: str, tenant: Any) -> None:
    record, key = tenant
    client = await Client.connect(hub_url, api_key=key)
    other = await hub.control.create_key(
        record.id, "gone", ["tables:read"], created_by="t", now=time.time()
    )
    watcher = await Client.connect(hub_url, api_key=other.secret)
    try:
        table = await client.create_table("T", [("N", "number")])
        for n in range(3):
            await table.insert({"N": n})
        await _handshake(hub_url, {"Authorization": "Bearer ht_live_nope"})
        await hub.control.revoke_key(other.record.id, now=time.time())
        while hub.metrics.revocation_closes < 1:
            await asyncio.sleep(0.01)
        code, headers, body = await get(hub, "/metrics")
    finally:
        await client.close()
        await watcher.close()
    assert code == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body)}
    value = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert value[("hypertab_connections", ())] >= 1
    assert value[("hypertab_messages_in_total", (("type", "apply"),))] == 4
    assert value[("hypertab_messages_out_total", (("type", "ack"),))] == 4
    assert value[("hypertab_ops_committed_total", ())] == 4
    assert value[("hypertab_commit_batches_count", ())] == 4
    assert value[("hypertab_commit_batches_bucket", (("le", "1.0"),))] == 4  # one batch each
    assert value[("hypertab_commit_batches_bucket", (("le", "+Inf"),))] == 4
    assert value[("hypertab_commit_batches_sum", ())] == 4
    assert value[("hypertab_ack_latency_seconds_count", ())] == 4
    assert value[("hypertab_auth_failures_total", (("reason", "malformed"),))] == 1
    assert value[("hypertab_revocation_closes_total", ())] == 1
    assert value[("hypertab_open_tenant_stores", ())] == 1
    assert value[("hypertab_changes_delivered_total", ())] >= 3
    assert "hypertab_rate_limited" in families


def test_the_histograms_expose_what_prometheus_client_would() -> None:
    """:class:`Buckets` (observed on the hot path without prometheus_client) renders the
    same samples as a ``prometheus_client.Histogram`` fed the same values."""
    import random

    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from server.hub.metrics import HubMetrics

    metrics = HubMetrics()
    reference = CollectorRegistry()
    bounds = metrics.ack_latency.bounds
    histogram = Histogram("hypertab_ack_latency_seconds", "x", buckets=bounds, registry=reference)
    rng = random.Random(7)
    values = [rng.choice(bounds) for _ in range(50)] + [rng.uniform(0, 4) for _ in range(500)]
    for v in values:
        metrics.acked(v)
        histogram.observe(v)

    def samples(text: str) -> dict[tuple[str, str], float]:
        return {
            (s.name, s.labels.get("le", "")): s.value
            for f in text_string_to_metric_families(text)
            if f.name == "hypertab_ack_latency_seconds"
            for s in f.samples
            if not s.name.endswith("_created")
        }

    ours = samples(metrics.render().decode())
    theirs = samples(generate_latest(reference).decode())
    assert set(ours) == set(theirs) and len(ours) == len(bounds) + 3
    for name in theirs:
        assert abs(ours[name] - theirs[name]) < 1e-9, name
