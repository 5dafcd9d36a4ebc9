"""Server memory per idle authenticated WebSocket connection, the connect rate, and
revocation latency with every connection open.

How it works
------------
1. A temporary data dir gets one tenant and one API key per :data:`CONNECTIONS_PER_KEY`
   connections (the server caps connections per credential), plus one key per revocation
   sample, made through ``ControlPlane``.
2. ``hypertab serve --port 0 --port-file F`` runs in a subprocess (uvloop, as in production)
   on 127.0.0.1. One warm-up connection is opened, then the server's RSS is read (psutil).
3. ``--connections`` clients connect (``Authorization: Bearer``, ``hypertab.v1.msgpack``,
   no compression, no client pings) and each waits for its ``welcome``. They are spread
   over ``--clients`` client processes (this file run with ``--worker``), each with
   ``--batch / --clients`` handshakes in flight and its own loopback source address
   (127.0.0.2, 127.0.0.3, ...: one source address has ~28,000 ephemeral ports, and one
   process's file limit is the server's too). After a short settle the RSS is read again.
4. ``(rss_after - rss_before) / connections`` is the server's cost of one idle connection
   (target <= 14 KiB); ``connections / seconds`` the connect rate (handshake + key check +
   welcome).
5. With all of them open, ``--revocations`` times: this process opens one connection with
   a key of its own, revokes that key through a ``ControlPlane`` on the data dir (as
   ``hypertab key revoke`` does: commit, then a poke on the hubs' wake-up sockets) and
   times revoke -> close frame (4003) seen. The server's open descriptors are counted
   before and after every sample, and every client process counts its open connections at
   the end: none of the others may have closed.
6. Then SIGTERM: the time to close everything gracefully is reported too.

The soft ``RLIMIT_NOFILE`` is raised (bounded by the hard limit) before the server starts,
so both processes can hold the sockets. Prints one JSON line.

    .venv/bin/python bench/connections.py [--connections 19500] [--clients 4] [--batch 500]
                                          [--revocations 20] [--workers N]

``--workers N`` runs ``hypertab serve --workers N`` on a private redis-server instead: RSS,
descriptors and CPU are summed over the supervisor and its workers, and each worker's RSS
and descriptors are reported too (each worker has the file limit to itself).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import proctree
import psutil  # type: ignore[import-untyped]
import report
from websockets.asyncio.client import ClientConnection, connect
from websockets.protocol import State

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol.codec import MSGPACK, codec_for
from protocol.messages import Welcome
from server.auth.principal import KeyId, Plan
from server.config import load_pepper
from server.control.plane import ControlPlane

CONNECTIONS_PER_KEY = 500
PLOT_DATA: dict[str, tuple[list[int], list[float]]] = {}
START_TIMEOUT = 30.0
T = TypeVar("T")


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-files limit toward ``wanted`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def make_keys(
    data_dir: Path, count: int, victims: int
) -> tuple[list[str], list[tuple[str, str]]]:
    """A tenant, ``count`` keys for the idle connections and ``victims`` keys to revoke;
    returns the plaintext keys and the victims' (key id, plaintext)."""
    plane = await ControlPlane.open(data_dir, pepper=load_pepper(data_dir), watch=False)
    try:
        now = time.time()
        tenant, first = await plane.create_tenant("bench", Plan.ENTERPRISE, now=now)
        keys = [first.secret]
        for i in range(1, count):
            issued = await plane.create_key(
                tenant.id, f"bench-{i}", ["tables:read"], created_by="bench", now=now
            )
            keys.append(issued.secret)
        revoked: list[tuple[str, str]] = []
        for i in range(victims):
            issued = await plane.create_key(
                tenant.id, f"revoke-{i}", ["tables:read"], created_by="bench", now=now
            )
            revoked.append((issued.record.id, issued.secret))
        return keys, revoked
    finally:
        await plane.close()


def start_server(
    root: Path, workers: int = 1, redis_url: str | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """``hypertab serve`` on 127.0.0.1 and a free port (``--workers N`` on ``redis_url``
    when N > 1); returns the process (the supervisor, with workers) and the port."""
    port_file = root / "port"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    if redis_url is not None:
        env["HYPERTAB_REDIS_URL"] = redis_url
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1"),
            *("--port", "0", "--port-file", str(port_file), "--data-dir", str(root / "data")),
            *("--log-level", "WARNING"),
            *(("--workers", str(workers)) if workers > 1 else ()),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parent.parent,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(FileNotFoundError, ValueError):
            return proc, int(port_file.read_text())
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


async def open_one(url: str, key: str, **kw: Any) -> ClientConnection:
    ws = await connect(
        url,
        additional_headers={"Authorization": f"Bearer {key}"},
        subprotocols=[MSGPACK],  # type: ignore[list-item]
        compression=None,
        ping_interval=None,
        open_timeout=START_TIMEOUT,
        max_queue=4,
        **kw,  # local_addr: the loopback source address
    )
    welcome = codec_for(MSGPACK).decode_server(await asyncio.wait_for(ws.recv(), START_TIMEOUT))
    if not isinstance(welcome, Welcome):
        raise RuntimeError(f"expected welcome, got {type(welcome).__name__}")
    return ws


def rss_of(server: psutil.Process) -> int:
    """The RSS of every server process, summed."""
    return proctree.rss_bytes(proctree.tree(server))


def fds_of(server: psutil.Process) -> int:
    """Open descriptors of every server process, summed."""
    return proctree.open_fds(proctree.tree(server))


def cpu_of(server: psutil.Process) -> float:
    """User + system CPU seconds of every server process, summed."""
    return proctree.cpu_seconds(proctree.tree(server))


def settled_rss(server: psutil.Process, seconds: float = 1.0) -> int:
    """The server's RSS (all its processes) after ``seconds`` to finish pending work."""
    time.sleep(seconds)
    return rss_of(server)


class Worker:
    """One client process (``--worker``): opens its share, then answers ``count`` lines."""

    def __init__(self, proc: asyncio.subprocess.Process, source: str, count: int) -> None:
        self.proc = proc
        self.source = source
        self.count = count
        self.opened = 0

    async def line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await self.proc.stdout.readline()
        if not raw:
            raise RuntimeError(f"client process {self.source} exited ({self.proc.returncode})")
        return dict(json.loads(raw))

    async def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.line()


async def start_workers(
    args: argparse.Namespace, url: str, keys_file: Path, count: int
) -> list[Worker]:
    """``--clients`` client processes, connections 1..count split between them."""
    workers: list[Worker] = []
    per = -(-count // args.clients)
    for i in range(args.clients):
        first = 1 + i * per
        n = min(per, count - i * per)
        if n <= 0:
            break
        source = f"127.0.0.{2 + i % args.sources}"
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, __file__, "--worker", "--url", url, "--source", source),
            *("--keys-file", str(keys_file), "--first", str(first), "--connections", str(n)),
            *("--batch", str(max(1, args.batch // args.clients))),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        workers.append(Worker(proc, source, n))
    return workers


async def follow_progress(workers: list[Worker], bar: Any) -> None:
    """Until every worker has opened its share (``{"opened": n}`` lines, then ``ready``)."""

    async def one(worker: Worker) -> None:
        while True:
            line = await worker.line()
            if "error" in line:
                raise RuntimeError(f"client process {worker.source}: {line['error']}")
            bar.update(line["opened"] - worker.opened)
            worker.opened = line["opened"]
            if line.get("ready"):
                return

    await asyncio.gather(*(one(w) for w in workers))


async def revocations(
    args: argparse.Namespace,
    url: str,
    data_dir: Path,
    victims: list[tuple[str, str]],
    server: psutil.Process,
) -> tuple[list[float], int]:
    """Revoke -> close seen, one fresh key at a time; returns the latencies and how many
    other connections the server lost meanwhile (must be 0)."""
    plane = await ControlPlane.open(data_dir, pepper=load_pepper(data_dir), watch=False)
    latencies: list[float] = []
    lost = 0
    try:
        for key_id, secret in victims:
            conn = await open_one(url, secret)
            fds = fds_of(server)
            closed = asyncio.ensure_future(conn.wait_closed())
            started = time.time()
            await plane.revoke_key(KeyId(key_id), now=started)
            await asyncio.wait_for(closed, START_TIMEOUT)
            latencies.append(time.time() - started)
            if conn.close_code != 4003:
                raise RuntimeError(f"revoked connection closed with {conn.close_code}")
            await asyncio.sleep(0.05)  # the server's side of the closed socket is released
            lost += max(0, fds - 1 - fds_of(server))
    finally:
        await plane.close()
    return latencies, lost


async def bench(
    args: argparse.Namespace,
    keys: list[str],
    victims: list[tuple[str, str]],
    root: Path,
    proc: subprocess.Popen[bytes],
    port: int,
) -> dict[str, Any]:
    count: int = args.connections
    warm: ClientConnection | None = None
    workers: list[Worker] = []
    try:
        url = f"ws://127.0.0.1:{port}/v1/ws"
        server = psutil.Process(proc.pid)
        warm = await open_one(url, keys[0])  # warm-up: code paths, first store
        rss_before = await asyncio.to_thread(settled_rss, server)
        keys_file = root / "keys.json"

        cpu_before = cpu_of(server)
        started = time.perf_counter()
        rss_curve = ([0], [rss_before / 2**20])  # (connections open, server RSS MiB): plot
        workers = await start_workers(args, url, keys_file, count)
        with report.progress(count, "connections", "conn") as bar:
            progress = asyncio.ensure_future(follow_progress(workers, bar))
            while not progress.done():
                await asyncio.wait([progress], timeout=0.5)
                rss_curve[0].append(sum(w.opened for w in workers))
                rss_curve[1].append(rss_of(server) / 2**20)
            progress.result()
        PLOT_DATA["server RSS"] = rss_curve
        connect_s = time.perf_counter() - started
        server_cpu_s = cpu_of(server) - cpu_before
        rss_after = await asyncio.to_thread(settled_rss, server)
        fds = fds_of(server)
        # Per worker (the supervisor holds no connections): RSS and descriptors.
        each = [p for p in proctree.tree(server) if p.pid != server.pid] or [server]
        per_process = [(int(p.memory_info().rss), int(p.num_fds())) for p in each]

        latencies, lost = await revocations(args, url, root / "data", victims, server)
        counts = await asyncio.gather(*(w.ask("count") for w in workers))
        still_open = sum(c["open"] for c in counts)

        stopping = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 120)
        shutdown_s = time.perf_counter() - stopping
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for worker in workers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker.ask("exit"), 60)
            if worker.proc.returncode is None:
                worker.proc.kill()
            await worker.proc.wait()
        if warm is not None:
            await warm.close()

    per_conn = (rss_after - rss_before) / count / 1024
    ordered = sorted(latencies)
    figures: dict[str, Any] = {
        "bench": "connections",
        "connections": count,
        "client_processes": len(workers),
        "source_addresses": len({w.source for w in workers}),
        "keys": len(keys),
        "connect_s": round(connect_s, 2),
        "connects_per_s": round(count / connect_s),
        "server_cpu_ms_per_connect": round(server_cpu_s * 1000 / count, 3),
        "rss_before_kib": rss_before // 1024,
        "rss_after_kib": rss_after // 1024,
        "rss_after_mb": round(rss_after / 1e6, 1),
        "rss_per_connection_kib": round(per_conn, 2),
        "target_kib": 14,
        "workers": args.workers,
        "worker_rss_mb": [round(r / 1e6, 1) for r, _ in per_process],
        "worker_fds": [n for _, n in per_process],
        "server_fds": fds,
        "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "shutdown_s": round(shutdown_s, 2),
        "server_exit": code,
    }
    if ordered:
        figures["revocations"] = {
            "n": len(ordered),
            "p50_ms": round(ordered[len(ordered) // 2] * 1e3, 2),
            "p90_ms": round(ordered[(len(ordered) * 9) // 10] * 1e3, 2),
            "max_ms": round(ordered[-1] * 1e3, 2),
            "over_50_ms": sum(1 for t in ordered if t > 0.05),
            "others_lost": lost,
            "others_still_open": still_open,
        }
    return figures


async def worker_main(args: argparse.Namespace, keys: list[str]) -> None:
    """A client process: open ``--connections`` from ``--source``, report, then serve
    ``count`` (how many are still open) and ``exit`` lines on stdin."""
    conns: list[ClientConnection] = []

    def say(**fields: Any) -> None:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()

    try:
        for start in range(0, args.connections, args.batch):
            batch = range(start, min(start + args.batch, args.connections))
            conns += await asyncio.gather(
                *(
                    open_one(
                        args.url,
                        keys[(args.first + i) // CONNECTIONS_PER_KEY],
                        local_addr=(args.source, 0),
                    )
                    for i in batch
                )
            )
            say(opened=len(conns))
    except Exception as exc:
        say(error=f"{type(exc).__name__}: {exc}", opened=len(conns))
        return
    say(opened=len(conns), ready=True)
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if line == "count":
            say(open=sum(1 for c in conns if c.state is State.OPEN))
        else:  # "exit", or stdin closed
            break
    await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
    say(closed=len(conns))


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run under uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def per_source(args: argparse.Namespace) -> int:
    """The most connections :func:`start_workers` opens from one source address."""
    per = -(-args.connections // args.clients)
    counts = [0] * args.sources
    for i in range(args.clients):
        counts[i % args.sources] += max(0, min(per, args.connections - i * per))
    return max(counts)


def ephemeral_ports() -> int:
    """How many local ports the kernel hands out per source address (Linux; else 28,232,
    its default range)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        return 28_232
    return int(high) - int(low) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    quick = report.quick()
    parser.add_argument("--connections", type=int, default=10_000 if quick else 19_500)
    parser.add_argument("--batch", type=int, default=500, help="handshakes in flight, in all")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument(
        "--sources", type=int, default=4, help="loopback source addresses (127.0.0.2, ...)"
    )
    parser.add_argument(
        "--revocations", type=int, default=10 if quick else 20, help="revocation samples"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="serve --workers N on a private redis-server"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--keys-file", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # One process's file limit bounds each server process and each client process: with
    # --workers the connections are spread over the workers, and over --clients here.
    per_server = -(-args.connections // max(1, args.workers))
    per_client = -(-args.connections // max(1, args.clients))
    limit = raise_fd_limit(max(per_server, per_client) + 1024)
    if args.worker:
        run(worker_main(args, json.loads(Path(args.keys_file).read_text())))
        return
    if limit < max(per_server, per_client) + 100:
        parser.error(
            f"open-files limit is {limit}: too low for {max(per_server, per_client)} "
            "connections in one process (more --workers or --clients)"
        )
    if (busiest := per_source(args)) > (ports := ephemeral_ports()):
        parser.error(
            f"{busiest} connections from one source address, which has {ports} ephemeral "
            "ports (net.ipv4.ip_local_port_range): more --sources (one per --clients)"
        )
    with tempfile.TemporaryDirectory(prefix="hypertab-bench-") as tmp:
        root = Path(tmp)
        per_key = -(-(args.connections + 1) // CONNECTIONS_PER_KEY)
        keys, victims = asyncio.run(make_keys(root / "data", per_key, args.revocations))
        (root / "keys.json").write_text(json.dumps(keys))  # for the client processes
        redis: subprocess.Popen[bytes] | None = None
        redis_url = None
        if args.workers > 1:
            from crossnode import free_port, redis_server

            redis_port = free_port()
            redis = redis_server(redis_port, root)
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
        proc, port = start_server(root, args.workers, redis_url)
        try:
            figures = run(asyncio.wait_for(bench(args, keys, victims, root, proc, port), 1800))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if redis is not None:
                redis.terminate()
                redis.wait(timeout=10)
    report.emit(
        figures,
        {
            "rss": lambda: report.series_plot(
                f"connections: server RSS as idle connections open ({args.batch} at a time)"
                f"\n{figures['rss_per_connection_kib']} KiB per connection after settling",
                PLOT_DATA,
                "server RSS (MiB)",
                xlabel="open authenticated WebSocket connections",
            )
        },
    )


if __name__ == "__main__":
    main()
