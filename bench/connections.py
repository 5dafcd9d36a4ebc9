"""Server memory per idle authenticated WebSocket connection, and the connect rate.

How it works
------------
1. A temporary data dir gets one tenant and one API key per :data:`CONNECTIONS_PER_KEY`
   connections (the server caps connections per credential), made through ``ControlPlane``.
2. ``hypertab serve --port 0 --port-file F`` runs in a subprocess (uvloop, as in production)
   on 127.0.0.1. One warm-up connection is opened, then the server's RSS is read (psutil).
3. ``--connections`` clients connect in batches of ``--batch`` (``Authorization: Bearer``,
   ``hypertab.v1.msgpack``, no compression, no client pings) and each waits for its
   ``welcome``. After a short settle the RSS is read again.
4. ``(rss_after - rss_before) / connections`` is the server's cost of one idle connection
   (target <= 20 KiB); ``connections / seconds`` the connect rate (handshake + key check +
   welcome). Then SIGTERM: the time to close everything gracefully is reported too.

The soft ``RLIMIT_NOFILE`` is raised (bounded by the hard limit) before the server starts,
so both processes can hold the sockets. Prints one JSON line.

    .venv/bin/python bench/connections.py [--connections 10000] [--batch 500]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

import psutil  # type: ignore[import-untyped]
import report
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol.codec import MSGPACK, codec_for
from protocol.messages import Welcome
from server.auth.principal import Plan
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


async def make_keys(data_dir: Path, count: int) -> list[str]:
    """A tenant and ``count`` keys for it; returns the plaintext keys."""
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
        return keys
    finally:
        await plane.close()


def start_server(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``hypertab serve`` on 127.0.0.1 and a free port; returns the process and the port."""
    port_file = root / "port"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1"),
            *("--port", "0", "--port-file", str(port_file), "--data-dir", str(root / "data")),
            *("--log-level", "WARNING"),
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


async def open_one(url: str, key: str) -> ClientConnection:
    ws = await connect(
        url,
        additional_headers={"Authorization": f"Bearer {key}"},
        subprotocols=[MSGPACK],  # type: ignore[list-item]
        compression=None,
        ping_interval=None,
        open_timeout=START_TIMEOUT,
        max_queue=4,
    )
    welcome = codec_for(MSGPACK).decode_server(await asyncio.wait_for(ws.recv(), START_TIMEOUT))
    if not isinstance(welcome, Welcome):
        raise RuntimeError(f"expected welcome, got {type(welcome).__name__}")
    return ws


def settled_rss(server: psutil.Process, seconds: float = 1.0) -> int:
    """The server's RSS after it had ``seconds`` to finish pending work."""
    time.sleep(seconds)
    return int(server.memory_info().rss)


async def bench(
    args: argparse.Namespace, keys: list[str], proc: subprocess.Popen[bytes], port: int
) -> dict[str, Any]:
    count: int = args.connections
    clients: list[ClientConnection] = []
    try:
        url = f"ws://127.0.0.1:{port}/v1/ws"
        server = psutil.Process(proc.pid)
        clients.append(await open_one(url, keys[0]))  # warm-up: code paths, first store
        rss_before = await asyncio.to_thread(settled_rss, server)

        cpu_before = sum(server.cpu_times()[:2])
        started = time.perf_counter()
        rss_curve = ([0], [rss_before / 2**20])  # (connections open, server RSS MiB): plot
        with report.progress(count, "connections", "conn") as bar:
            for start in range(0, count, args.batch):
                batch = range(start + 1, min(start + args.batch, count) + 1)
                clients += await asyncio.gather(
                    *(open_one(url, keys[i // CONNECTIONS_PER_KEY]) for i in batch)
                )
                bar.update(len(batch))
                rss_curve[0].append(len(clients) - 1)
                rss_curve[1].append(server.memory_info().rss / 2**20)
        PLOT_DATA["server RSS"] = rss_curve
        connect_s = time.perf_counter() - started
        server_cpu_s = sum(server.cpu_times()[:2]) - cpu_before
        rss_after = await asyncio.to_thread(settled_rss, server)
        fds = server.num_fds()

        stopping = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 120)
        shutdown_s = time.perf_counter() - stopping
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)

    per_conn = (rss_after - rss_before) / count / 1024
    return {
        "bench": "connections",
        "connections": count,
        "keys": len(keys),
        "connect_s": round(connect_s, 2),
        "connects_per_s": round(count / connect_s),
        "server_cpu_ms_per_connect": round(server_cpu_s * 1000 / count, 3),
        "rss_before_kib": rss_before // 1024,
        "rss_after_kib": rss_after // 1024,
        "rss_per_connection_kib": round(per_conn, 2),
        "target_kib": 20,
        "server_fds": fds,
        "shutdown_s": round(shutdown_s, 2),
        "server_exit": code,
    }


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run under uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500, help="handshakes in flight")
    args = parser.parse_args()
    limit = raise_fd_limit(args.connections + 1024)
    if limit < args.connections + 100:
        parser.error(f"open-files limit is {limit}: too low for {args.connections} connections")
    with tempfile.TemporaryDirectory(prefix="hypertab-bench-") as tmp:
        root = Path(tmp)
        per_key = -(-(args.connections + 1) // CONNECTIONS_PER_KEY)
        keys = asyncio.run(make_keys(root / "data", per_key))
        proc, port = start_server(root)
        try:
            figures = run(asyncio.wait_for(bench(args, keys, proc, port), 600))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
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
