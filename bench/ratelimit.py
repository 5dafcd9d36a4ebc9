"""Rate-limiter throughput: checks per second, memory and (when reachable) Redis.

Each check is one message's acquire under the default policy: the principal's per-minute
charge plus the connection's burst charge, all or nothing. Prints one JSON line.

Redis: ``HYPERTAB_REDIS_URL`` when set, else a private ``redis-server`` on a free port when
the binary exists, else the Redis figures are ``null``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisError

from server.auth.principal import CredentialKind, Plan, Principal, Scope, TenantId
from server.ratelimit import LimitPolicy, MemoryRateLimiter, RedisRateLimiter

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
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
