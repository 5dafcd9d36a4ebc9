"""MCP tool calls per second through stdio, and the audit write's share of each call.

One process runs a ``HypertabServer`` (rate limits off) and the official ``mcp`` client;
``hypertab mcp`` (``python -m client_sdk.mcp``) is spawned on stdio with an agent key, as
an agent host would. Calls are sequential (one agent): ``query_rows`` (a 10-row page of a
1,000-row table) and ``insert_rows`` (one row).

The audit share: every call makes two audit round trips (``tool_call`` before the effect,
``tool_result`` after), each committing one entry to the tenant's audit log. The same calls
run through the same ``Gateway`` code in this process twice, with the audit and with it
replaced by a no-op; ``audit_share`` is ``1 - unaudited / audited`` (medians).

    .venv/bin/python bench/mcp.py [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# This file is bench/mcp.py: run as a script, its folder comes first on sys.path and would
# shadow the ``mcp`` package. Drop it (nothing else is imported from bench/).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

from client_sdk import Client  # noqa: E402
from client_sdk.mcp.tools import Gateway  # noqa: E402
from server.app import HypertabServer  # noqa: E402
from server.config import Config  # noqa: E402


def _ms(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50_ms": round(statistics.median(samples) * 1e3, 3),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e3, 3),
    }


async def _timed_calls(
    session: ClientSession, tool: str, args: dict[str, Any], n: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        result = await session.call_tool(tool, args)
        latencies.append(time.perf_counter() - t0)
        if result.is_error:
            raise SystemExit(f"{tool} failed: {result.content}")
    return n / (time.perf_counter() - start), latencies


class _NoAudit:
    """Stands in for ``client.tool_calls`` to time the same calls without the audit."""

    async def begin(self, tool: str, args: Any, **_: Any) -> str:
        return "unaudited"

    async def end(self, call: str, *, error: str | None = None) -> None:
        return None


async def _gateway_calls(gateway: Gateway, tool: str, args: dict[str, Any], n: int) -> list[float]:
    latencies: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        await gateway.call(tool, args)
        latencies.append(time.perf_counter() - t0)
    return latencies


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    n = args.calls
    with tempfile.TemporaryDirectory() as tmp:
        server = HypertabServer(Config(data_dir=Path(tmp) / "data", port=0))
        server.admission.enabled = False
        await server.start()
        url = f"ws://127.0.0.1:{server.port}/v1/ws"
        try:
            _, issued = await server.services.lifecycle.create_tenant("bench", now=time.time())
            async with await Client.connect(url, api_key=issued.secret) as admin:
                table = await admin.create_table("Items", [("Name", "text"), ("Qty", "number")])
                await table.insert_many({"Name": f"item {i}", "Qty": i} for i in range(1000))
                agent = await admin.keys.create("agent", ["tables:read", "tables:write"])

                root = _HERE.parent
                params = StdioServerParameters(
                    command=sys.executable,
                    args=["-m", "client_sdk.mcp"],
                    env={"HYPERTAB_URL": url, "HYPERTAB_API_KEY": agent.secret},
                    cwd=str(root),
                )
                with open(os.devnull, "w") as errlog:  # noqa: ASYNC230
                    async with (
                        stdio_client(params, errlog=errlog) as (read, write),
                        ClientSession(read, write) as session,
                    ):
                        await session.initialize()
                        query = {"table": "Items", "limit": 10}
                        insert = {"table": "Items", "rows": [{"Name": "x", "Qty": 1}]}
                        await _timed_calls(session, "query_rows", query, 20)  # warm up
                        i_rate, i_lat = await _timed_calls(session, "insert_rows", insert, n)
                        q_rate, q_lat = await _timed_calls(session, "query_rows", query, n)

                # The audit's share: the same tool calls through the same gateway code in
                # this process, with and without the two audit round trips.
                async with await Client.connect(url, api_key=agent.secret) as bot:
                    gateway = Gateway(bot)
                    audited = {
                        tool: await _gateway_calls(gateway, tool, a, n)
                        for tool, a in (("query_rows", query), ("insert_rows", insert))
                    }
                    bot.tool_calls = _NoAudit()  # type: ignore[assignment]
                    bare = {
                        tool: await _gateway_calls(gateway, tool, a, n)
                        for tool, a in (("query_rows", query), ("insert_rows", insert))
                    }
        finally:
            await server.stop()
    share = {
        tool: round(1 - statistics.median(bare[tool]) / statistics.median(audited[tool]), 3)
        for tool in audited
    }
    print(
        json.dumps(
            {
                "bench": "mcp",
                "calls": n,
                "query_rows_per_s": round(q_rate, 1),
                "query_rows": _ms(q_lat),
                "insert_rows_per_s": round(i_rate, 1),
                "insert_rows": _ms(i_lat),
                "in_process_audited_ms": {t: _ms(v)["p50_ms"] for t, v in audited.items()},
                "in_process_unaudited_ms": {t: _ms(v)["p50_ms"] for t, v in bare.items()},
                "audit_share": share,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
