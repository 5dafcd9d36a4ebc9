"""Helpers for the rate-limit tests: a settable clock, a raw protocol client, limit setup."""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from protocol.codec import JSON, codec_for
from protocol.messages import Apply, Changes, PresenceEvent, ServerMessage, Welcome
from protocol.ops import ColumnDef, ColumnType, CreateTable, InsertRows, NewRow, Op
from server.auth.principal import Plan
from server.hub.admission import AdmissionSettings
from server.ratelimit import LimitPolicy, PlanLimits

CODEC = codec_for(JSON)


class FakeClock:
    """The admission's clock, moved by the test (seconds)."""

    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def enable_limits(
    hub: Any,
    *,
    plans: dict[Plan, int] | None = None,
    burst: int = 1000,
    abuse_denials: int = 1000,
    auth_failures: int = 30,
) -> FakeClock:
    """Turn the hub's rate limits on with these numbers and a fake clock; returns it."""
    clock = FakeClock()
    hub.admission.enabled = True
    hub.admission.clock = clock
    hub.admission.settings = AdmissionSettings(
        policy=LimitPolicy(plan_limits=PlanLimits(plans or {}), burst_limit=burst),
        abuse_denials=abuse_denials,
        auth_failures=auth_failures,
    )
    return clock


def inserts(n: int) -> list[Op]:
    """``n`` ops, one row each."""
    return [InsertRows(rows=[NewRow(values={"N": i})]) for i in range(n)]


class Raw:
    """A bare protocol client (JSON frames), so tests see every server answer as sent."""

    def __init__(self, conn: ClientConnection, welcome: Welcome) -> None:
        self.conn = conn
        self.welcome = welcome
        self._ids = iter(range(1, 1 << 30))
        self._ops = iter(range(1, 1 << 30))

    @classmethod
    async def connect(cls, url: str, key: str) -> Raw:
        conn = await connect(
            url, additional_headers={"Authorization": f"Bearer {key}"}, subprotocols=[JSON]
        )  # type: ignore[list-item]
        welcome = CODEC.decode_server(await conn.recv())
        assert isinstance(welcome, Welcome)
        return cls(conn, welcome)

    def next_id(self) -> int:
        return next(self._ids)

    async def send(self, message: Any) -> None:
        await self.conn.send(CODEC.encode(message).decode())

    async def recv(self) -> ServerMessage:
        """The next answer, skipping broadcasts."""
        while True:
            message = CODEC.decode_server(await asyncio.wait_for(self.conn.recv(), 30))
            if not isinstance(message, Changes | PresenceEvent):
                return message

    async def apply(self, table: str, ops: list[Op]) -> ServerMessage:
        """Send one batch and return its answer (``ack`` or ``error``)."""
        rid = self.next_id()
        await self.send(Apply(id=rid, table=table, client="raw", op=f"o{next(self._ops)}", ops=ops))
        return await self.recv()

    async def create_table(self, table: str = "t1") -> ServerMessage:
        """Create a table with one number column ``N`` (1 op)."""
        op = CreateTable(name=table, columns=[ColumnDef(id="N", name="N", type=ColumnType.NUMBER)])
        return await self.apply(table, [op])

    async def close(self) -> None:
        await self.conn.close()
