"""The event loop's cost of fanning one group commit out to S subscribers (Hub.publish).

How it works: this process runs a bare ``websockets`` server (uvloop) whose S connections
are made, handshaken and then only read by a child process (this file with ``--drain``),
so the readers' CPU is not counted. Each connection gets a real ``Outbox`` and
``Subscriber`` on a ``Hub``; then ``--publishes`` times a group of ``--per-group`` changes
(one ``update_cells`` each, as bench/fanout.py sends) is published and the loop turns
until every connection was flushed. ``time.process_time()`` over the phase, divided by the
publishes: what one group costs the hub's event loop (encode, frame, write to S sockets,
flush). The best of ``--trials`` phases is reported (the machine is shared: other work
only ever adds). Run it in two checkouts to compare code; prints one JSON line.

    .venv/bin/python bench/publish.py [--subscribers 50 --publishes 2000 --per-group 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import report
import uvloop
from websockets.asyncio.server import ServerConnection, serve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol.codec import MSGPACK
from protocol.messages import Change
from protocol.ops import UpdateCells
from server.hub.fanout import Hub, Subscriber
from server.hub.outbox import Outbox

UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def drain(port: int, count: int) -> None:
    """The child: ``count`` connections that upgrade, then read and drop everything."""
    writers: list[asyncio.StreamWriter] = []

    async def one(reader: asyncio.StreamReader) -> None:
        while await reader.read(1 << 16):
            pass

    tasks = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(UPGRADE)
        writers.append(writer)  # kept: a collected writer closes its socket
        tasks.append(asyncio.ensure_future(one(reader)))
    await asyncio.gather(*tasks)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    conns: list[ServerConnection] = []
    all_in = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        conns.append(ws)
        if len(conns) == args.subscribers:
            all_in.set()
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--drain", str(port), str(args.subscribers)
        )
        try:
            await asyncio.wait_for(all_in.wait(), 30)
            hub = Hub()
            for i, conn in enumerate(conns):
                sub = Subscriber(Outbox(conn, binary=True), MSGPACK, f"s{i}", "t")
                hub.subscribe("tenant", "t", sub)
                sub.go_live(0)
            version = 0
            phases: list[float] = []
            for _ in range(args.trials):
                started = time.process_time()
                for n in range(args.publishes):
                    changes = []
                    for k in range(args.per_group):
                        version += 1
                        edit = UpdateCells(row=f"r{k}", values={"ts": time.time(), "n": n})
                        changes.append(
                            Change(version=version, ops=[edit], by="bench", client="w", op=f"e{n}")
                        )
                    hub.publish("tenant", "t", changes)
                    for _ in range(3):  # the flush runs a turn after the first write
                        await asyncio.sleep(0)
                phases.append((time.process_time() - started) / args.publishes)
            expected = args.trials * args.publishes * args.per_group * args.subscribers
            if hub.delivered != expected:
                raise SystemExit(f"delivered {hub.delivered} of {expected}")
        finally:
            child.kill()
            await child.wait()
    best = min(phases)
    return {
        "bench": "publish",
        "subscribers": args.subscribers,
        "per_group": args.per_group,
        "publishes": args.publishes,
        "trials": args.trials,
        "us_per_publish": round(best * 1e6, 1),
        "us_per_subscriber_write": round(best * 1e6 / args.subscribers, 2),
        "us_per_publish_all_trials": [round(p * 1e6, 1) for p in phases],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subscribers", "-S", type=int, default=50)
    p.add_argument("--publishes", type=int, default=500 if report.quick() else 2000)
    p.add_argument("--per-group", type=int, default=3, help="changes per group commit")
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--drain", nargs=2, type=int, metavar=("PORT", "N"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.drain:
        uvloop.run(drain(*args.drain))
        return
    report.emit(uvloop.run(bench(args)))


if __name__ == "__main__":
    main()
