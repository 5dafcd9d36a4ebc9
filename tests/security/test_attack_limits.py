"""Attacks on the rate limits and on what a connection keeps (docs/security.md, RL-*, OPS-*)."""

from __future__ import annotations

import asyncio
from typing import Any

from attack_helpers import Wire, eventually, ws_url

from protocol.messages import Ack, Apply, Error
from protocol.ops import ColumnDef, ColumnType, CreateTable, InsertRows, NewRow
from server.auth.principal import Plan
from server.hub.admission import AdmissionSettings
from server.ratelimit import LimitPolicy, PlanLimits


async def test_rl03_parallel_connections_share_one_plan_window(hub: Any, tenant: Any) -> None:
    _, key = tenant
    hub.admission.enabled = True
    hub.admission.clock = lambda: 1_000_000.0  # one instant: no window slides during the test
    hub.admission.settings = AdmissionSettings(
        policy=LimitPolicy(plan_limits=PlanLimits({Plan.FREE: 20}), burst_limit=1000),
        abuse_denials=1000,
    )
    url = ws_url(hub)
    wires = [await Wire.open(url, key) for _ in range(4)]
    create = CreateTable(name="T", columns=[ColumnDef(id="n", name="N", type=ColumnType.NUMBER)])
    await wires[0].send(Apply(id=1, table="t", client="w0", op="create", ops=[create]))
    assert isinstance(await wires[0].answer(), Ack)  # 1 op of 20

    async def flood(i: int, wire: Wire) -> list[Any]:
        for n in range(10):  # 4 connections x 10 single-op batches = 40 ops asked
            row = InsertRows(rows=[NewRow(values={"n": n})])
            await wire.send(Apply(id=100 + n, table="t", client=f"w{i}", op=f"o{n}", ops=[row]))
        return [await wire.answer() for _ in range(10)]

    answers = [a for part in await asyncio.gather(*map(flood, range(4), wires)) for a in part]
    acked = [a for a in answers if isinstance(a, Ack)]
    refused = [a for a in answers if isinstance(a, Error)]
    assert len(acked) == 19  # the principal's window, not the connection's, ran out
    assert len(refused) == 21 and {e.code for e in refused} == {"rate_limited"}
    await asyncio.gather(*(w.close() for w in wires))


async def test_ops09_handshake_headers_are_not_kept_after_upgrade(hub: Any, tenant: Any) -> None:
    _, key = tenant
    wire = await Wire.open(ws_url(hub), key)
    await eventually(lambda: len(hub.registry) == 1)
    (session,) = list(hub.registry.all())
    request, response = session.conn.request, session.conn.response
    assert request is not None and len(request.headers) == 0  # the credential is gone
    assert response is not None and len(response.headers) == 0
    assert key not in repr(vars(session.conn.request))
    await wire.close()
