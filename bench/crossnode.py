"""Cross-process broadcast: edits made through hub A, seen by subscribers on A and on B.

Two ``hypertab serve`` processes on one data dir and one private ``redis-server``. W writers
on A each send E inserts at ``--rate`` edits/s, each carrying its send time; S subscribers on
each hub record send→receipt delays and check that every version arrives once, in order.
The figure that matters is the extra delay of a remote subscriber (through Redis) over a
local one (the committing process delivers at once). Prints one JSON line.

    python bench/crossnode.py [--subscribers 5 --writers 4 --edits 500 --rate 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from protocol.codec import MSGPACK, codec_for
from protocol.messages import Changes, Subscribe, Subscribed
from protocol.ops import InsertRows

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"nothing on port {port}")


def redis_server(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server needed")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_port(port)
    return proc


def hub(data: Path, redis_url: str, port_file: Path) -> tuple[subprocess.Popen[bytes], int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    env["HYPERTAB_REDIS_URL"] = redis_url
    env["HYPERTAB_RATE_LIMITS"] = "off"
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--data-dir", str(data), "--port", "0",
         "--port-file", str(port_file), "--log-level", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return proc, int(port_file.read_text())
        if proc.poll() is not None:
            raise SystemExit(f"hub exited with {proc.returncode}")
        time.sleep(0.02)
    raise SystemExit("hub did not start")


async def make_key(data: Path) -> str:
    from server.auth.principal import Plan
    from server.config import load_pepper
    from server.control.plane import ControlPlane

    plane = await ControlPlane.open(data, pepper=load_pepper(data), watch=False)
    try:
        _, issued = await plane.create_tenant("bench", Plan.ENTERPRISE, now=time.time())
        return issued.secret
    finally:
        await plane.close()


class Subscriber:
    """One raw subscriber: delays, and whether versions came once each, in order."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.versions: list[int] = []
        self.start = 0

    async def run(self, url: str, key: str, table: str, ready: asyncio.Event, n: int) -> None:
        codec = codec_for(MSGPACK)
        async with connect(
            url,
            additional_headers={"Authorization": f"Bearer {key}"},
            subprotocols=[MSGPACK],  # type: ignore[list-item]
            compression=None,
            max_queue=None,
        ) as conn:
            await conn.recv()  # welcome
            await conn.send(codec.encode(Subscribe(id=1, table=table)))
            while True:
                message = codec.decode_server(await conn.recv(decode=False))
                if isinstance(message, Subscribed):
                    self.start = message.version
                    break
            ready.set()
            while len(self.versions) < n:
                message = codec.decode_server(await conn.recv(decode=False))
                if not isinstance(message, Changes):
                    continue
                now = time.time()
                for change in message.changes:
                    self.versions.append(change.version)
                    for op in change.ops:
                        if isinstance(op, InsertRows):
                            self.delays.append(now - float(op.rows[0].values["t"]))

    def in_order(self, n: int) -> bool:
        return self.versions == list(range(self.start + 1, self.start + n + 1))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from client_sdk import Client

    redis_port = free_port()
    redis = redis_server(redis_port, tmp)
    procs = []
    try:
        url = f"redis://127.0.0.1:{redis_port}/0"
        data = tmp / "data"
        key = await make_key(data)
        a, port_a = hub(data, url, tmp / "a.port")
        procs.append(a)
        b, port_b = hub(data, url, tmp / "b.port")
        procs.append(b)
        url_a, url_b = (f"ws://127.0.0.1:{p}/v1/ws" for p in (port_a, port_b))
        total = args.writers * args.edits
        async with await Client.connect(url_a, api_key=key, reconnect=False) as client:
            table = await client.create_table("Bench", [("t", "t", "number")])
            subs = {"local": [Subscriber() for _ in range(args.subscribers)],
                    "remote": [Subscriber() for _ in range(args.subscribers)]}  # fmt: skip
            readies, tasks = [], []
            for where, hub_url in (("local", url_a), ("remote", url_b)):
                for sub in subs[where]:
                    ready = asyncio.Event()
                    readies.append(ready)
                    tasks.append(asyncio.create_task(sub.run(hub_url, key, table.id, ready, total)))
            await asyncio.gather(*(r.wait() for r in readies))

            async def writer() -> None:
                for _ in range(args.edits):
                    await table.insert({"t": time.time()})
                    if args.rate:
                        await asyncio.sleep(1 / args.rate)

            started = time.perf_counter()
            await asyncio.gather(*(writer() for _ in range(args.writers)))
            await asyncio.wait_for(asyncio.gather(*tasks), 120)
            elapsed = time.perf_counter() - started
        out: dict[str, Any] = {
            "bench": "crossnode",
            "subscribers_per_hub": args.subscribers,
            "writers": args.writers,
            "edits_per_writer": args.edits,
            "rate_per_writer": args.rate,
            "acked_ops_per_s": round(total / elapsed),
        }
        for where, group in subs.items():
            delays = [d for sub in group for d in sub.delays]
            out[f"{where}_p50_ms"] = pct(delays, 0.5)
            out[f"{where}_p99_ms"] = pct(delays, 0.99)
            out[f"{where}_all_in_order_once"] = all(sub.in_order(total) for sub in group)
        return out
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        redis.terminate()
        redis.wait(timeout=10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subscribers", "-S", type=int, default=5, help="per hub")
    p.add_argument("--writers", "-W", type=int, default=4)
    p.add_argument("--edits", "-E", type=int, default=500, help="edits per writer")
    p.add_argument("--rate", type=float, default=100, help="edits/s per writer; 0: unpaced")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(asyncio.run(run(args, Path(tmp)))))


if __name__ == "__main__":
    main()
