"""Authenticated WebSocket handshakes per second, API key and JWT, against a real server.

The server runs in a subprocess (``hypertab serve --port 0 --port-file F``, uvloop, INFO
logs to a file), on a fresh data directory with one tenant. The bench process opens
``--count`` connections per credential kind, ``--concurrency`` at a time (client on
uvloop too); each one does the full handshake (TCP, HTTP upgrade, credential verified
against control.db or by HS256 signature and claims, welcome received) and then closes.
JWTs are signed beforehand, so only the server's verification is measured. Prints one JSON line.

    .venv/bin/python bench/handshake.py [--count 3000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt as pyjwt
import report
from websockets.asyncio.client import connect

from protocol.codec import MSGPACK
from server.config import load_pepper
from server.control.plane import ControlPlane

SECRET = "bench-handshake-secret-" + "y" * 32
LATENCIES_MS: dict[str, list[float]] = {}  # per credential kind: the plot


async def _prepare(data: Path, keys: int) -> tuple[list[str], list[str]]:
    plane = await ControlPlane.open(data, pepper=load_pepper(data), watch=False)
    try:
        now = time.time()
        tenant, admin = await plane.create_tenant("bench", now=now)
        secrets = [admin.secret]
        for i in range(keys - 1):
            issued = await plane.create_key(
                tenant.id, f"k{i}", ["tables:read"], created_by="bench", now=now
            )
            secrets.append(issued.secret)
    finally:
        await plane.close()
    tokens = [
        pyjwt.encode(
            {
                "sub": f"user-{i}",
                "aud": "authenticated",
                "iat": int(now),
                "exp": int(now) + 3600,
                "app_metadata": {"tenant": tenant.id},
            },
            SECRET,
            algorithm="HS256",
        )
        for i in range(keys)
    ]
    return secrets, tokens


async def _one(url: str, credential: str) -> float:
    start = time.perf_counter()
    async with connect(
        url,
        additional_headers={"Authorization": f"Bearer {credential}"},
        subprotocols=[MSGPACK],  # type: ignore[list-item]
        compression=None,
        open_timeout=30,
    ) as conn:
        await conn.recv()  # welcome
        elapsed = time.perf_counter() - start
    return elapsed


async def _run(
    url: str, credentials: list[str], count: int, concurrency: int, label: str = ""
) -> dict[str, float]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def worker(i: int) -> None:
        async with gate:
            latencies.append(await _one(url, credentials[i % len(credentials)]))
            bar.update()

    start = time.perf_counter()
    with report.progress(count, f"handshakes {label or 'warm-up'}", "conn") as bar:
        await asyncio.gather(*(worker(i) for i in range(count)))
    wall = time.perf_counter() - start
    if label:
        LATENCIES_MS[label] = [s * 1e3 for s in latencies]
    latencies.sort()
    return {
        "per_s": round(count / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1e3, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1e3, 2),
    }


async def _measure(url: str, secrets: list[str], tokens: list[str], args: Any) -> Any:
    await _run(url, secrets, 200, args.concurrency)  # warm-up
    api = await _run(url, secrets, args.count, args.concurrency, "API key")
    jwt = await _run(url, tokens, args.count, args.concurrency, "JWT (HS256)")
    return api, jwt


def _loop_run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        secrets, tokens = asyncio.run(_prepare(data, 10))
        port_file = Path(tmp) / "port"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
        env["HYPERTAB_JWT_SECRET"] = SECRET
        command = [sys.executable, "-m", "server.cli", "serve", "--port", "0"]
        with open(Path(tmp) / "server.log", "wb") as log:
            server = subprocess.Popen(
                [*command, "--port-file", str(port_file), "--data-dir", str(data)],
                env=env,
                stdout=log,
                stderr=log,
            )
            try:
                deadline = time.monotonic() + 30
                while not port_file.exists():
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("server did not start")
                    time.sleep(0.05)
                url = f"ws://127.0.0.1:{int(port_file.read_text())}/v1/ws"
                api, jwt = _loop_run(_measure(url, secrets, tokens, args))
            finally:
                server.terminate()
                server.wait(timeout=30)
    report.emit(
        {
            "bench": "handshake",
            "server": "subprocess (hypertab serve, uvloop)",
            "count": args.count,
            "concurrency": args.concurrency,
            "api_key": api,
            "jwt": jwt,
        },
        {
            "latency": lambda: report.cdf_plot(
                f"handshake: connect → welcome, {args.concurrency} in flight\n"
                "(TCP, HTTP upgrade, credential check, welcome frame)",
                LATENCIES_MS,
                log_x=True,
            )
        },
    )


if __name__ == "__main__":
    main()
