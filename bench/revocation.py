"""Revoke -> socket closed latency with 1,000 open connections, p50/p99, two paths.

One process runs a ``HypertabServer`` (uvloop) and the clients. 1,000 background
connections (10 keys x 100) stay open throughout. For each sample a fresh key opens one
connection, is revoked, and the latency is measured until that client sees the close frame
(4003); every sample also checks that the background connections are still 1,000.

* ``control_plane``: ``server.control.revoke_key`` in the server process (commit, publish on
  the bus, close). Clock: just before the call -> close seen by the client.
* ``cli``: ``hypertab key revoke`` in another process against the same data directory; the
  server learns of it through its control.db watcher (50 ms ``PRAGMA data_version`` poll).
  Clock: the ``revoked_at`` the CLI stored (read just before its transaction) -> close seen.
  ``cli_wall`` is from spawning the CLI process (Python start-up included).

    .venv/bin/python bench/revocation.py [--samples 100] [--cli-samples 20]
    .venv/bin/python bench/revocation.py --workers 2 [--samples 100]

``--workers N`` measures across processes instead: ``hypertab serve --workers N`` with a
private redis-server and 200 background connections. An admin SDK client revokes fresh
keys through the worker it is connected to (``key_revoke`` over its WebSocket); each
sample's socket is placed (read from the kernel with psutil) on another worker
(``cross_process``: the close travels through Redis) or on the revoker's own
(``same_process``), alternately. Clock: just before the request -> close seen.
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
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil
import report
from websockets.asyncio.client import ClientConnection, connect

from protocol.codec import MSGPACK
from server.app import HypertabServer
from server.auth.principal import KeyId
from server.config import Config, load_pepper
from server.control.plane import ControlPlane


def _summary(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50_ms": round(statistics.median(samples) * 1e3, 2),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e3, 2),
        "max_ms": round(samples[-1] * 1e3, 2),
        "n": len(samples),
    }


async def _open(url: str, key: str) -> ClientConnection:
    conn = await connect(
        url,
        additional_headers={"Authorization": f"Bearer {key}"},
        subprotocols=[MSGPACK],  # type: ignore[list-item]
        compression=None,
        open_timeout=30,
    )
    await conn.recv()  # welcome
    return conn


async def _closed_at(conn: ClientConnection) -> float:
    await asyncio.wait_for(conn.wait_closed(), 30)
    if conn.close_code != 4003:
        raise SystemExit(f"unexpected close code {conn.close_code}")
    return time.time()


def _worker_of(workers: list[psutil.Process], port: int, local_port: int) -> int | None:
    """The pid of the worker holding our connection from ``local_port``."""
    for worker in workers:
        for c in worker.net_connections("tcp"):
            if c.raddr and c.raddr.port == local_port and c.laddr.port == port:
                return worker.pid
    return None


async def _placed(
    url: str, key: str, workers: list[psutil.Process], port: int, want: Any
) -> ClientConnection:
    """A connection with ``key`` held by a worker for which ``want(pid)`` is true."""
    for _ in range(50):
        conn = await _open(url, key)
        if want(_worker_of(workers, port, conn.local_address[1])):
            return conn
        await conn.close()
    raise SystemExit("could not place a connection on the wanted worker")


def _start_workers(
    data: Path, env: dict[str, str], port_file: Path, workers: int
) -> tuple[subprocess.Popen[bytes], int]:
    server = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--workers", str(workers),
         "--port", "0", "--port-file", str(port_file), "--data-dir", str(data),
         "--log-level", "WARNING"],
        env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (port_file.exists() and port_file.read_text().strip()):
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise SystemExit("server did not start")
        time.sleep(0.05)
    return server, int(port_file.read_text())


async def cross_process(args: argparse.Namespace) -> None:
    """Revoke through one worker, time the close on another (and on the same one)."""
    from crossnode import free_port, redis_server

    from client_sdk import Client

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        plane = await ControlPlane.open(data, pepper=load_pepper(data), watch=False)
        try:
            _, admin = await plane.create_tenant("bench", now=time.time())
        finally:
            await plane.close()
        redis_port = free_port()
        redis = redis_server(redis_port, Path(tmp))
        env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
        env["HYPERTAB_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        env["HYPERTAB_RATE_LIMITS"] = "off"  # key creation is not what is measured
        port_file = Path(tmp) / "port"
        server, port = _start_workers(data, env, port_file, args.workers)
        try:
            url = f"ws://127.0.0.1:{port}/v1/ws"
            workers = psutil.Process(server.pid).children()
            client = await Client.connect(url, api_key=admin.secret, reconnect=False)
            assert client._conn is not None  # the SDK does not expose its socket
            home = _worker_of(workers, port, client._conn.local_address[1])
            background_key = (await client.keys.create("bg", ["tables:read"])).secret
            background = await asyncio.gather(*(_open(url, background_key) for _ in range(200)))
            samples: dict[str, list[float]] = {"cross_process": [], "same_process": []}
            with report.progress(args.samples, "revocations", "revoke") as bar:
                for i in range(args.samples):
                    kind = "cross_process" if i % 2 == 0 else "same_process"
                    issued = await client.keys.create(f"s{i}", ["tables:read"])
                    conn = await _placed(
                        url, issued.secret, workers, port,
                        (lambda pid: pid != home) if kind == "cross_process"
                        else (lambda pid: pid == home),
                    )  # fmt: skip
                    closed = asyncio.ensure_future(_closed_at(conn))
                    start = time.time()
                    await client.keys.revoke(issued.info.id)
                    samples[kind].append(await closed - start)
                    bar.update()
            await asyncio.gather(*(c.close() for c in background))
            await client.close()
        finally:
            server.terminate()
            server.wait(timeout=60)
            redis.terminate()
            redis.wait(timeout=10)
    report.emit(
        {
            "bench": "revocation",
            "server": f"hypertab serve --workers {args.workers} + redis-server",
            "open_connections": 200,
            "cross_process": _summary(samples["cross_process"]),
            "same_process": _summary(samples["same_process"]),
        },
        {
            "latency": lambda: report.cdf_plot(
                f"revocation: revoke through one worker → socket closed (--workers {args.workers})",
                {k: [s * 1e3 for s in v] for k, v in samples.items()},
                log_x=True,
            )
        },
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--cli-samples", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.workers > 1:
        await cross_process(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        server = HypertabServer(Config(data_dir=data, port=0))
        await server.start()
        control = server.control
        assert control is not None
        url = f"ws://127.0.0.1:{server.port}/v1/ws"
        stack = ExitStack()
        try:
            tenant, _ = await control.create_tenant("bench", now=time.time())

            async def new_key(name: str) -> Any:
                return await control.create_key(
                    tenant.id, name, ["tables:read"], created_by="bench", now=time.time()
                )

            background: list[ClientConnection] = []
            for i in range(10):
                key = (await new_key(f"bg{i}")).secret
                background += await asyncio.gather(*(_open(url, key) for _ in range(100)))
            assert len(server.registry) == 1000

            in_process: list[float] = []
            bar = stack.enter_context(
                report.progress(args.samples + args.cli_samples, "revocations", "revoke")
            )
            for i in range(args.samples):
                issued = await new_key(f"s{i}")
                conn = await _open(url, issued.secret)
                closed = asyncio.ensure_future(_closed_at(conn))
                start = time.time()
                await control.revoke_key(issued.record.id, now=start)
                in_process.append(await closed - start)
                assert len(server.registry) == 1000
                bar.update()

            env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
            cli: list[float] = []
            cli_wall: list[float] = []
            for i in range(args.cli_samples):
                issued = await new_key(f"c{i}")
                conn = await _open(url, issued.secret)
                closed = asyncio.ensure_future(_closed_at(conn))
                spawned = time.time()
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "server.cli",
                    "key",
                    "revoke",
                    issued.record.id,
                    "--data-dir",
                    str(data),
                    env=env,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                done = await closed
                if await proc.wait() != 0:
                    raise SystemExit("hypertab key revoke failed")
                record = await control.get_key(KeyId(issued.record.id))
                assert record is not None and record.revoked_at is not None
                cli.append(done - record.revoked_at)
                cli_wall.append(done - spawned)
                assert len(server.registry) == 1000
                bar.update()
            await asyncio.gather(*(c.close() for c in background))
        finally:
            stack.close()
            await server.stop()
    samples_ms = {
        "control plane, in process": [s * 1e3 for s in in_process],
        "hypertab key revoke (CLI), from its commit": [s * 1e3 for s in cli],
        "CLI, from process spawn": [s * 1e3 for s in cli_wall],
    }
    report.emit(
        {
            "bench": "revocation",
            "server": "same process (HypertabServer, uvloop)",
            "open_connections": 1000,
            "control_plane": _summary(in_process),
            "cli": _summary(cli),
            "cli_wall": _summary(cli_wall),
        },
        {
            "latency": lambda: report.cdf_plot(
                "revocation: revoke → socket closed, 1,000 other connections open",
                samples_ms,
                log_x=True,
            )
        },
    )


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(main())
    else:
        uvloop.run(main())
