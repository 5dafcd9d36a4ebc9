"""Rate-limiter throughput: checks per second, memory and (when reachable) Redis; and the
per-message cost of admission inside the running hub.

Each check is one message's acquire under the default policy: the principal's per-minute
charge plus the connection's burst charge, all or nothing. Prints one JSON line.

Hub overhead (``--hub``, on by default): an in-process hub (uvloop, ``process`` durability),
one enterprise tenant, one raw msgpack connection pipelining ``HUB_BATCHES`` single-op
``update_cells`` batches (windows of 256 in flight) and reading every ack. The same workload
runs with admission off and on (limits raised so nothing is refused: every message is
checked and charged, nothing is denied), alternating, best of ``HUB_ROUNDS`` (5) each; the
per-op overhead is the difference of the per-op wall times.

Redis: ``HYPERTAB_REDIS_URL`` when set, else a private ``redis-server`` on a free port when
the binary exists, else the Redis figures are ``null``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import report
from redis.exceptions import RedisError
from websockets.asyncio.client import connect

from protocol.codec import MSGPACK, codec_for
from protocol.messages import Ack, Apply
from protocol.ops import ColumnDef, ColumnType, CreateTable, InsertRows, NewRow, UpdateCells
from server.auth.principal import CredentialKind, Plan, Principal, Scope, TenantId
from server.hub.admission import AdmissionSettings
from server.ratelimit import LimitPolicy, MemoryRateLimiter, PlanLimits, RedisRateLimiter

HUB_BATCHES = 20_000
HUB_ROUNDS = 5
WINDOW = 256

POLICY = LimitPolicy(burst_limit=1_000_000)
PRINCIPALS = [
    Principal(
        TenantId(f"t{i}"),
        f"user{i}",
        CredentialKind.API_KEY,
        f"k{i}",
        frozenset({Scope.TABLES_WRITE}),
        Plan.ENTERPRISE,
    )
    for i in range(100)
]


def bench_memory(n: int) -> float:
    limiter = MemoryRateLimiter()
    now = 1_000.0
    start = time.perf_counter()
    for i in range(n):
        p = PRINCIPALS[i % len(PRINCIPALS)]
        limiter.acquire_sync(POLICY.charges(p, "c1", 1), now + i * 1e-5)
    return n / (time.perf_counter() - start)


async def bench_redis(url: str, n: int, concurrency: int) -> float:
    limiter = RedisRateLimiter.from_url(url, prefix=f"bench:{os.getpid()}:")
    try:
        await limiter.acquire(POLICY.charges(PRINCIPALS[0], "warm", 1), 0.0)
        counter = iter(range(n))

        async def worker() -> None:
            for i in counter:
                p = PRINCIPALS[i % len(PRINCIPALS)]
                await limiter.acquire(POLICY.charges(p, "c1", 1), 1_000.0 + i * 1e-5)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - start)
    finally:
        await limiter.close()


@contextmanager
def redis_url() -> Iterator[str | None]:
    url = os.environ.get("HYPERTAB_REDIS_URL")
    binary = shutil.which("redis-server")
    if url or binary is None:
        yield url
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


async def _pipeline(url: str, key: str, table: str, n: int) -> float:
    codec = codec_for(MSGPACK)
    async with connect(
        url, additional_headers={"Authorization": f"Bearer {key}"}, subprotocols=[MSGPACK]
    ) as ws:  # type: ignore[list-item]
        await ws.recv()  # welcome
        start = time.perf_counter()
        sent = acked = 0
        while acked < n:
            while sent < n and sent - acked < WINDOW:
                ops = [UpdateCells(row=f"r{sent % 100}", values={"N": sent})]
                await ws.send(
                    codec.encode(
                        Apply(
                            id=sent,
                            table=table,
                            client="b",
                            op=f"o{time.monotonic_ns()}-{sent}",
                            ops=ops,
                        )
                    )
                )
                sent += 1
            message = codec.decode_server(await ws.recv())
            if isinstance(message, Ack):
                acked += 1
            elif type(message).__name__ == "Error":
                raise RuntimeError(f"refused: {message}")
        return time.perf_counter() - start


async def bench_hub(
    n: int, rounds: int, per_round: dict[str, list[float]] | None = None
) -> dict[str, object]:
    from server.app import HypertabServer
    from server.auth.principal import Plan as P
    from server.config import Config

    with tempfile.TemporaryDirectory() as workdir:
        server = HypertabServer(Config(data_dir=Path(workdir), port=0))
        await server.start()
        try:
            _, issued = await server.control.create_tenant("bench", P.ENTERPRISE, now=time.time())
            url = f"ws://127.0.0.1:{server.port}/v1/ws"
            codec = codec_for(MSGPACK)
            async with connect(
                url,
                additional_headers={"Authorization": f"Bearer {issued.secret}"},
                subprotocols=[MSGPACK],  # type: ignore[list-item]
            ) as ws:
                await ws.recv()
                col = ColumnDef(id="N", name="N", type=ColumnType.NUMBER)
                rows = [NewRow(id=f"r{i}", values={"N": 0}) for i in range(100)]
                ops = [CreateTable(name="t", columns=[col]), InsertRows(rows=rows)]
                await ws.send(codec.encode(Apply(id=1, table="t", client="b", op="setup", ops=ops)))
                await ws.recv()
            server.admission.settings = AdmissionSettings(
                policy=LimitPolicy(plan_limits=PlanLimits({P.ENTERPRISE: 10**9}), burst_limit=10**9)
            )
            off: list[float] = []
            on: list[float] = []
            with report.progress(rounds * 2, "hub rounds (admission off/on)", "round") as bar:
                for _ in range(rounds):
                    for enabled, out in ((False, off), (True, on)):
                        server.admission.enabled = enabled
                        out.append(await _pipeline(url, issued.secret, "t", n))
                        bar.update()
            assert server.metrics.rate_limited.total() == 0
        finally:
            await server.stop()
    if per_round is not None:
        per_round["admission off"] = [n / t for t in off]
        per_round["admission on"] = [n / t for t in on]
    best_off, best_on = min(off), min(on)
    return {
        "hub_batches": n,
        "hub_ops_per_s_limits_off": round(n / best_off),
        "hub_ops_per_s_limits_on": round(n / best_on),
        "hub_admission_us_per_op": round((best_on - best_off) / n * 1e6, 2),
    }


def main() -> None:
    figures: dict[str, object] = {
        "bench": "ratelimit",
        "charges_per_check": 2,
        "memory_checks_per_s": round(bench_memory(200_000)),
        "redis_checks_per_s_sequential": None,
        "redis_checks_per_s_concurrent64": None,
    }
    with redis_url() as url:
        if url is not None:
            try:
                figures["redis_checks_per_s_sequential"] = round(
                    asyncio.run(bench_redis(url, 5_000, 1))
                )
                figures["redis_checks_per_s_concurrent64"] = round(
                    asyncio.run(bench_redis(url, 20_000, 64))
                )
            except (OSError, RedisError) as exc:
                figures["redis_error"] = str(exc)
    per_round: dict[str, list[float]] = {}
    if "--no-hub" not in sys.argv:
        import uvloop

        figures.update(uvloop.run(bench_hub(HUB_BATCHES, HUB_ROUNDS, per_round)))
    report.emit(figures, plots(figures, per_round))


def plots(figures: dict[str, object], per_round: dict[str, list[float]]) -> dict[str, report.Plot]:
    """Checks/s per backend; the hub's ops/s per round with admission off and on."""
    backends = {
        "memory": figures["memory_checks_per_s"],
        "Redis, sequential": figures["redis_checks_per_s_sequential"],
        "Redis, 64 concurrent": figures["redis_checks_per_s_concurrent64"],
    }
    out: dict[str, report.Plot] = {
        "checks": lambda: report.bar_plot(
            "ratelimit: checks/s per backend (2 charges per check)",
            {k: {"checks/s": float(v)} for k, v in backends.items() if isinstance(v, int)},
            "checks/s",
        )
    }
    if per_round:
        out["hub-rounds"] = lambda: report.series_plot(
            f"ratelimit: hub ops/s per round, {HUB_BATCHES:,} pipelined single-op batches",
            {k: (list(range(1, len(v) + 1)), v) for k, v in per_round.items()},
            "acked ops/s",
            xlabel="round (alternating off, on)",
        )
    return out


if __name__ == "__main__":
    main()
