"""Server memory held by clients that stop reading during a paced answer (docs/security.md,
open findings): a reproducer with figures, not a speed benchmark.

usage: python bench/slowread.py [--connections 8] [--hold 30]

`hypertab serve` runs in its own process with default limits (an enterprise tenant, so the
plan limit is out of the way; the per-connection burst limit applies). Each of the
``--connections`` clients asks for 40 query pages of about 1 MB, stops reading (its
transport paused, the TCP connection left open), then sends 1 MiB frames until the server
stops taking them. Prints one JSON line: the server's RSS before and after, the memory per
connection, how many of the connections the server still holds after ``--hold`` seconds
and 2 s after the clients went away (from its own ``hypertab_connections`` gauge), and how
long ``SIGTERM`` then takes to stop it (killed after 120 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import psutil
from websockets.asyncio.client import connect

from client_sdk import Client
from protocol.codec import JSON
from protocol.ops import InsertRows, NewRow

ROOT = Path(__file__).resolve().parents[1]


async def make_key(data_dir: Path) -> str:
    from server.auth.principal import Plan
    from server.config import load_pepper
    from server.control.plane import ControlPlane

    plane = await ControlPlane.open(data_dir, pepper=load_pepper(data_dir), watch=False)
    try:
        _, issued = await plane.create_tenant("bench", Plan.ENTERPRISE, now=time.time())
        return issued.secret
    finally:
        await plane.close()


def start(data_dir: Path, port_file: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    command = [sys.executable, "-m", "server.cli", "serve", "--data-dir", str(data_dir)]
    command += ["--port", "0", "--port-file", str(port_file), "--log-level", "ERROR"]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("server did not start")
        time.sleep(0.02)
    return proc


def open_connections(port: int) -> int:
    """The server's own count of open WebSocket connections (loopback may read /metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("hypertab_connections "):
                return int(float(line.split()[1]))
    raise SystemExit("no hypertab_connections gauge")


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    data_dir = tmp / "data"
    key = await make_key(data_dir)
    port_file = tmp / "hub.port"
    proc = start(data_dir, port_file)
    server = psutil.Process(proc.pid)
    port = int(port_file.read_text())
    url = f"ws://127.0.0.1:{port}/v1/ws"
    try:
        async with await Client.connect(url, api_key=key) as client:
            table = await client.create_table("T", [("A", "text")], table_id="t")
            column = next(iter(table.replica.columns))
            rows = [NewRow(values={column: "x" * 1000}) for _ in range(1000)]
            await client.apply("t", [InsertRows(rows=rows)])
        base = server.memory_info().rss / 2**20
        conns = []
        for _ in range(args.connections):
            conn = await connect(
                url,
                additional_headers={"Authorization": f"Bearer {key}"},
                subprotocols=[JSON],  # type: ignore[list-item]
                compression=None,
                max_size=None,
            )
            await conn.recv()
            conn.transport.pause_reading()  # the client stops reading; TCP stays open
            conns.append(conn)
        query = msgspec.json.encode({"type": "query", "id": 1, "table": "t", "limit": 1000})
        pad = msgspec.json.encode({"type": "ping", "id": 2, "pad": "p" * ((1 << 20) - 100)})
        for conn in conns:
            for _ in range(40):
                await conn.send(query.decode())
        await asyncio.sleep(1)

        async def push(conn: Any) -> None:
            with contextlib.suppress(Exception):
                for _ in range(80):
                    await asyncio.wait_for(conn.send(pad.decode()), 5)

        await asyncio.gather(*(push(conn) for conn in conns))
        await asyncio.sleep(1)
        after = server.memory_info().rss / 2**20
        await asyncio.sleep(args.hold)
        held = server.memory_info().rss / 2**20
        still_open = await asyncio.to_thread(open_connections, port)
        for conn in conns:
            conn.transport.abort()  # the clients go away: the server notices at once?
        await asyncio.sleep(2)
        open_after_abort = await asyncio.to_thread(open_connections, port)
        started = time.monotonic()
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 120)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutdown_s = time.monotonic() - started
        return {
            "connections": args.connections,
            "rss_base_mb": round(base, 1),
            "rss_after_mb": round(after, 1),
            "mb_per_connection": round((after - base) / args.connections, 1),
            "hold_s": args.hold,
            "rss_after_hold_mb": round(held, 1),
            "still_open_after_hold": still_open,
            "still_open_2s_after_the_clients_left": open_after_abort,
            "sigterm_to_exit_s": round(shutdown_s, 1),
        }
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--hold", type=float, default=30.0, help="seconds to wait after")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hypertab-slowread-") as tmp:
        print(json.dumps(asyncio.run(run(args, Path(tmp)))))


if __name__ == "__main__":
    main()
