"""Fan-out: S subscribers and W writers on one table, the hub against a bare relay.

The server runs in its own process (pinned to core 0 when there are two), the load in this
one (core 1); subscribers read with a light frame parser (bench/wsreader.py) so that the
harness does not dominate the latencies. Each writer sends E single-cell edits carrying its
send time; every subscriber records the delay to receipt. Server CPU is read from /proc
before and after the measured phase:
``cpu_us_per_delivery = server CPU time / (edits x subscribers)``. The same workload
then runs against two baselines: a bare ``websockets`` + uvloop broadcast relay (no auth, no
storage, one frame per edit per subscriber; bench/relay_server.py) and a durable relay
(the same plus an aiosqlite WAL op log with group commit, ack after COMMIT;
bench/durable_relay_server.py). Unpaced, writers send as fast as the socket
takes frames; paced, each writer sends ``--rate`` edits/s. Prints one JSON line.

    python bench/fanout.py [--subscribers 50 --writers 5 --edits 2000 --rate 50
                            --encoding msgpack|json] [--profile FILE] [--workers N]

``--workers N`` (N > 1) compares instead, in one run, the hub alone (one process) with
``hypertab serve --workers N`` on a private redis-server (the relays are skipped). The
kernel spreads subscribers and writers over the workers (``connections_per_worker``), so
about (N-1)/N of each edit's deliveries cross processes through Redis; server CPU is then
summed over the supervisor, every worker and redis-server. ``workers_cpu_ratio`` is N
workers' CPU per delivery over one process's (the target: at most 1.5).

Server CPU is also split into the main thread (the event loop: sockets, decoding,
authorization, admission, fan-out, encoding) and the other threads (aiosqlite's worker
threads, where the SQL and COMMIT run; the control.db watcher). ``--profile FILE`` runs only
the paced hub phase, with the server's main thread under cProfile (stats written to FILE
for ``python -m pstats``); its figures are then inflated by the profiler.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import proctree
import psutil
import report
import uvloop
from websockets.asyncio.client import ClientConnection, connect
from wsreader import Reader, open_reader

from protocol.codec import JSON, MSGPACK, codec_for
from protocol.messages import Ack, Apply, Changes, Subscribe, Welcome
from protocol.ops import ColumnDef, ColumnType, CreateTable, InsertRows, NewRow, UpdateCells

ROOT = Path(__file__).resolve().parent.parent
ROWS_PER_WRITER = 10
LIMITS_OFF = False  # --no-limits
# One entry per measured run, in run order (see plots()): the plots.
PLOT_DATA: list[dict[str, Any]] = []


def pin(core: int) -> None:
    with contextlib.suppress(AttributeError, OSError):
        if len(os.sched_getaffinity(0)) > 1 and (os.cpu_count() or 1) > core:
            os.sched_setaffinity(0, {core})


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    ps: psutil.Process = field(init=False)
    extra: list[psutil.Process] = field(default_factory=list)
    """Processes whose CPU counts as the server's too (redis-server with --workers)."""

    def __post_init__(self) -> None:
        self.ps = psutil.Process(self.proc.pid)

    def processes(self) -> list[psutil.Process]:
        """This process, its children (the workers of ``serve --workers N``), the extra."""
        return [*proctree.tree(self.ps), *self.extra]

    def workers(self) -> list[psutil.Process]:
        """The processes serving connections: the workers, else this process."""
        return self.ps.children() or [self.ps]

    def cpu(self) -> float:
        return proctree.cpu_seconds(self.processes())

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds so far of each process: supervisor, worker pids, redis-server."""
        out: dict[str, float] = {}
        for proc in self.processes():
            t = proc.cpu_times()
            name = (
                "redis"
                if proc in self.extra
                else (
                    "worker" if proc.pid != self.ps.pid or not self.ps.children() else "supervisor"
                )
            )
            key = f"{name}-{proc.pid}" if name == "worker" else name
            out[key] = t.user + t.system
        return out

    def main_thread_cpu(self) -> float:
        """CPU of the threads running an event loop (a thread id that is its process id)."""
        total = 0.0
        for proc in self.processes():
            for thread in proc.threads():
                if thread.id == proc.pid:
                    total += thread.user_time + thread.system_time
        return total

    def peak_rss_mb(self) -> float:
        total = 0.0
        for proc in self.processes():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) / 1024
        return total

    def connections_per_worker(self) -> list[int]:
        """Established connections on the server's port, per worker."""
        return [
            sum(1 for c in w.net_connections("tcp") if c.laddr.port == self.port and c.raddr)
            for w in self.workers()
        ]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def start(cmd: list[str], port_file: Path, redis_url: str | None = None) -> Server:
    port_file.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    if redis_url is not None:
        env["HYPERTAB_REDIS_URL"] = redis_url
    # Admission control stays on (its cost is part of the figure); the enterprise plan's
    # 50,000 ops/min covers the run, and the per-connection burst is lifted so that
    # unpaced writers measure fan-out, not refusals.
    env["HYPERTAB_BURST_PER_SECOND"] = "1000000"
    if LIMITS_OFF:  # --no-limits: admission off, to isolate the cost of the broadcast
        env["HYPERTAB_RATE_LIMITS"] = "off"
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: pin(0),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return Server(proc, int(port_file.read_text()))
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        time.sleep(0.02)
    raise SystemExit("server did not start")


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


class Load:
    """The subscribers and writers of one run."""

    def __init__(self, args: argparse.Namespace, url: str, key: str | None) -> None:
        self.args = args
        self.url = url
        self.key = key
        self.codec = codec_for(args.encoding)
        self.latencies: list[float] = []
        self.received = 0
        self.expected = args.writers * args.edits * args.subscribers
        self.done = asyncio.Event()
        self.acked = 0
        self.last_ack = 0.0
        self.arrivals: list[tuple[float, int]] = []  # (time, deliveries) per frame: plots
        self.bar = report.bar(self.expected, "deliveries", "msg")

    async def open(self) -> ClientConnection:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        conn = await connect(
            self.url,
            additional_headers=headers,
            subprotocols=[self.args.encoding] if self.key else None,  # type: ignore[list-item]
            compression=None,
            max_size=2**22,
            max_queue=None,
        )
        if self.key:
            assert isinstance(self.codec.decode_server(await conn.recv(decode=False)), Welcome)
        return conn

    async def send(self, conn: ClientConnection, message: Any) -> None:
        await conn.send(self.codec.encode(message), text=not self.codec.binary)

    def _record(self, stamps: list[float]) -> None:
        now = time.perf_counter()
        self.latencies.extend(now - ts for ts in stamps)
        self.received += len(stamps)
        self.arrivals.append((now, len(stamps)))
        self.bar.update(len(stamps))
        if self.received >= self.expected:
            self.bar.close()
            self.done.set()

    def on_hub_frame(self, frame: bytes) -> None:
        message = self.codec.decode_server(frame)
        if isinstance(message, Changes):
            self._record(
                [
                    op.values["ts"]
                    for c in message.changes
                    for op in c.ops
                    if isinstance(op, UpdateCells)
                ]
            )

    def on_relay_frame(self, frame: bytes) -> None:
        message = self.codec.decode_client(frame)
        assert isinstance(message, Apply)
        self._record([op.values["ts"] for op in message.ops if isinstance(op, UpdateCells)])

    async def subscriber(self, on_message: Callable[[bytes], None]) -> Reader:
        """A subscriber on the light frame reader (see bench/wsreader.py)."""
        host, port, path = self.host_port_path()
        headers = {}
        if self.key:
            headers = {
                "Authorization": f"Bearer {self.key}",
                "Sec-WebSocket-Protocol": self.args.encoding,
            }
        return await open_reader(host, port, path, headers, on_message)

    def host_port_path(self) -> tuple[str, int, str]:
        rest = self.url.removeprefix("ws://")
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        return host, int(port), "/" + path

    def send_on(self, reader: Reader, message: Any) -> None:
        data = self.codec.encode(message)
        if self.codec.binary:
            reader.send_binary(data)
        else:
            reader.send_text(data)

    async def ack_reader(self, conn: ClientConnection) -> None:
        async for frame in conn:
            if isinstance(self.codec.decode_server(frame), Ack):
                self.acked += 1
                self.last_ack = time.perf_counter()

    async def writer(self, conn: ClientConnection, table: str, lane: int) -> None:
        interval = 1.0 / self.args.rate if self.args.rate else 0.0
        start = time.perf_counter()
        for n in range(self.args.edits):
            if interval:
                delay = start + n * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            row = f"w{lane}r{n % ROWS_PER_WRITER}"
            edit = UpdateCells(row=row, values={"ts": time.perf_counter(), "n": n})
            await self.send(
                conn, Apply(id=n, table=table, client=f"w{lane}", op=f"e{n}", ops=[edit])
            )


# Runs ``hypertab serve`` with the main thread under cProfile; stats are written when the
# server returns from SIGTERM (its graceful shutdown).
PROFILED_SERVE = """
import cProfile, sys
from server.cli import main
out = sys.argv.pop(1)
profile = cProfile.Profile()
profile.enable()
try:
    main(sys.argv[1:])
finally:
    profile.disable()
    profile.dump_stats(out)
"""


async def run_hub(
    args: argparse.Namespace,
    tmp: Path,
    *,
    workers: int = 1,
    redis: subprocess.Popen[bytes] | None = None,
    redis_url: str | None = None,
) -> dict[str, Any]:
    data_dir = tmp / "hub-data"
    key = await make_key(data_dir)
    port_file = tmp / "hub.port"
    python = [sys.executable, "-m", "server.cli"]
    if args.profile:
        python = [sys.executable, "-c", PROFILED_SERVE, args.profile]
    server = start(
        [
            *python,
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--log-level",
            "WARNING",
            *(["--workers", str(workers)] if workers > 1 else []),
        ],
        port_file,
        redis_url,
    )
    if redis is not None:
        server.extra.append(psutil.Process(redis.pid))
    try:
        load = Load(args, f"ws://127.0.0.1:{server.port}/v1/ws", key)
        setup = await load.open()
        columns = [
            ColumnDef(id="ts", name="ts", type=ColumnType.NUMBER),
            ColumnDef(id="n", name="n", type=ColumnType.NUMBER),
        ]
        rows = [NewRow(id=f"w{w}r{r}") for w in range(args.writers) for r in range(ROWS_PER_WRITER)]
        await load.send(
            setup,
            Apply(
                id=1,
                table="bench",
                client="setup",
                op="c",
                ops=[CreateTable(name="bench", columns=columns), InsertRows(rows=rows)],
            ),
        )
        assert isinstance(load.codec.decode_server(await setup.recv(decode=False)), Ack)
        for _ in range(args.subscribers):
            reader = await load.subscriber(load.on_hub_frame)
            load.send_on(reader, Subscribe(id=1, table="bench"))
        await asyncio.sleep(0.5)  # every subscription live
        writers = [await load.open() for _ in range(args.writers)]
        if workers > 1 and args.writers_together:
            writers = await together(load, server, writers)
        tasks = [asyncio.create_task(load.ack_reader(c)) for c in writers]
        spread = server.connections_per_worker()
        result = await measure(load, server, writers, "bench", tasks)
        result["connections_per_worker"] = spread
        return result
    finally:
        server.stop()


async def together(
    load: Load, server: Server, writers: list[ClientConnection]
) -> list[ClientConnection]:
    """The same number of writer connections, all held by the first writer's worker."""

    def worker_of(conn: ClientConnection) -> int | None:
        for w in server.workers():
            for c in w.net_connections("tcp"):
                if c.raddr and c.raddr.port == conn.local_address[1]:
                    return w.pid
        return None

    home = worker_of(writers[0])
    kept = [c for c in writers if worker_of(c) == home]
    for c in writers:
        if c not in kept:
            await c.close()
    while len(kept) < len(writers):
        conn = await load.open()
        if worker_of(conn) == home:
            kept.append(conn)
        else:
            await conn.close()
    return kept


async def compare_workers(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """One process against ``args.workers`` workers on Redis, the same load, one run."""
    from crossnode import free_port, redis_server

    unpaced = argparse.Namespace(**{**vars(args), "rate": 0})
    alone = await run_hub(unpaced, tmp)
    (tmp / "hub-data").rename(tmp / "hub-data-alone")
    redis_port = free_port()
    redis = redis_server(redis_port, tmp)
    url = f"redis://127.0.0.1:{redis_port}/0"
    try:
        many = await run_hub(unpaced, tmp, workers=args.workers, redis=redis, redis_url=url)
        (tmp / "hub-data").rename(tmp / "hub-data-many")
        paced_many = (
            await run_hub(args, tmp, workers=args.workers, redis=redis, redis_url=url)
            if args.rate
            else {}
        )
    finally:
        redis.terminate()
        redis.wait(timeout=10)
    paced_alone = {}
    if args.rate:
        (tmp / "hub-data").rename(tmp / "hub-data-many-paced")
        paced_alone = await run_hub(args, tmp)
    out: dict[str, Any] = {
        "bench": "fanout",
        "mode": "workers",
        "workers": args.workers,
        "subscribers": args.subscribers,
        "writers": args.writers,
        "edits_per_writer": args.edits,
        "encoding": args.encoding,
        "one_process_cpu_us_per_delivery": alone["cpu_us_per_delivery"],
        "workers_cpu_us_per_delivery": many["cpu_us_per_delivery"],
        "workers_cpu_ratio": round(many["cpu_us_per_delivery"] / alone["cpu_us_per_delivery"], 3),
        "one_process_delivered_per_s": alone["delivered_per_s"],
        "workers_delivered_per_s": many["delivered_per_s"],
        "one_process_unpaced_p99_ms": alone["p99_ms"],
        "workers_unpaced_p99_ms": many["p99_ms"],
        "connections_per_worker": many["connections_per_worker"],
        "writer_placement": "one worker" if args.writers_together else "spread by the kernel",
        "rate_limits": "off" if args.no_limits else "on (Redis with workers, memory alone)",
        "workers_cpu_s_by_process": many["cpu_s_by_process"],
        "one_process_cpu_s": alone["server_cpu_s"],
        "workers_main_thread_us_per_edit": many["main_thread_us_per_edit"],
        "workers_other_threads_us_per_edit": many["other_threads_us_per_edit"],
        "one_process_main_thread_us_per_edit": alone["main_thread_us_per_edit"],
        "one_process_other_threads_us_per_edit": alone["other_threads_us_per_edit"],
    }
    if args.rate:
        out.update(
            {
                "paced_rate_per_writer": args.rate,
                "one_process_paced_cpu_us_per_delivery": paced_alone["cpu_us_per_delivery"],
                "workers_paced_cpu_us_per_delivery": paced_many["cpu_us_per_delivery"],
                "workers_paced_cpu_ratio": round(
                    paced_many["cpu_us_per_delivery"] / paced_alone["cpu_us_per_delivery"], 3
                ),
                "one_process_paced_p50_ms": paced_alone["p50_ms"],
                "one_process_paced_p99_ms": paced_alone["p99_ms"],
                "workers_paced_p50_ms": paced_many["p50_ms"],
                "workers_paced_p99_ms": paced_many["p99_ms"],
                "workers_paced_cpu_s_by_process": paced_many["cpu_s_by_process"],
                "one_process_paced_cpu_s": paced_alone["server_cpu_s"],
                "workers_paced_main_thread_us_per_edit": paced_many["main_thread_us_per_edit"],
                "workers_paced_other_threads_us_per_edit": paced_many["other_threads_us_per_edit"],
                "one_process_paced_main_thread_us_per_edit": paced_alone["main_thread_us_per_edit"],
                "one_process_paced_other_threads_us_per_edit": paced_alone[
                    "other_threads_us_per_edit"
                ],
            }
        )
    return out


async def count_acks(load: Load, conn: ClientConnection) -> None:
    """The durable relay's acks (one ``ack`` frame per committed edit)."""
    async for _ in conn:
        load.acked += 1
        load.last_ack = time.perf_counter()


async def run_relay(args: argparse.Namespace, tmp: Path, *, durable: bool) -> dict[str, Any]:
    port_file = tmp / "relay.port"
    if durable:
        db = tmp / f"relay-{time.monotonic_ns()}.db"
        cmd = [sys.executable, str(ROOT / "bench" / "durable_relay_server.py"), str(port_file)]
        cmd.append(str(db))
    else:
        cmd = [sys.executable, str(ROOT / "bench" / "relay_server.py"), str(port_file)]
    server = start(cmd, port_file)
    try:
        load = Load(args, f"ws://127.0.0.1:{server.port}", None)
        for _ in range(args.subscribers):
            reader = await load.subscriber(load.on_relay_frame)
            reader.send_binary(b"sub")
        tasks: list[asyncio.Task[Any]] = []
        writers = [await load.open() for _ in range(args.writers)]
        for conn in writers:
            await conn.send(b"pub")
        if durable:
            tasks = [asyncio.create_task(count_acks(load, c)) for c in writers]
        await asyncio.sleep(0.5)
        return await measure(load, server, writers, "bench", tasks)
    finally:
        server.stop()


async def measure(
    load: Load,
    server: Server,
    writers: list[ClientConnection],
    table: str,
    tasks: list[asyncio.Task[Any]],
) -> dict[str, Any]:
    rss = report.RssSampler(server.proc.pid).start()
    cpu0 = server.cpu()
    each0 = server.cpu_by_process()
    main0 = server.main_thread_cpu()
    t0 = time.perf_counter()
    await asyncio.gather(*(load.writer(c, table, i) for i, c in enumerate(writers)))
    await asyncio.wait_for(load.done.wait(), timeout=600)
    elapsed = time.perf_counter() - t0
    cpu = server.cpu() - cpu0
    each = {k: round(v - each0.get(k, 0.0), 3) for k, v in server.cpu_by_process().items()}
    main_cpu = server.main_thread_cpu() - main0
    PLOT_DATA.append(
        {
            "latency_ms": [s * 1e3 for s in load.latencies],
            "rate": report.rate_over_time(
                [t for t, _ in load.arrivals], t0, counts=[n for _, n in load.arrivals]
            ),
            "rss": rss.stop(),
        }
    )
    for task in tasks:
        task.cancel()
    lat = sorted(load.latencies)
    deliveries = load.expected
    result = {
        "cpu_us_per_delivery": round(cpu / deliveries * 1e6, 3),
        "delivered_per_s": round(deliveries / elapsed),
        "p50_ms": round(lat[len(lat) // 2] * 1e3, 2),
        "p99_ms": round(lat[int(len(lat) * 0.99)] * 1e3, 2),
        "max_ms": round(lat[-1] * 1e3, 2),
        "server_cpu_s": round(cpu, 3),
        "main_thread_us_per_edit": round(main_cpu / (deliveries / load.args.subscribers) * 1e6, 1),
        "other_threads_us_per_edit": round(
            (cpu - main_cpu) / (deliveries / load.args.subscribers) * 1e6, 1
        ),
        "seconds": round(elapsed, 3),
        "peak_rss_mb": round(server.peak_rss_mb(), 1),
        "cpu_s_by_process": each,
    }
    if load.acked:
        result["acked_ops_per_s"] = round(load.acked / (load.last_ack - t0))
        result["acked"] = load.acked
    return result


async def main(args: argparse.Namespace) -> dict[str, Any]:
    pin(1)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.workers > 1:
            return await compare_workers(args, tmp)
        if args.profile:
            profiled = await run_hub(args, tmp)
            return {
                "bench": "fanout",
                "encoding": args.encoding,
                "profile": args.profile,
                **profiled,
            }
        unpaced = argparse.Namespace(**{**vars(args), "rate": 0})
        paced = argparse.Namespace(**vars(args))
        relay = await run_relay(unpaced, tmp, durable=False)
        durable = await run_relay(unpaced, tmp, durable=True)
        hub = await run_hub(unpaced, tmp)
        (tmp / "hub-data").rename(tmp / "hub-data-1")
        hub_paced = await run_hub(paced, tmp) if args.rate else {}
        relay_paced = await run_relay(paced, tmp, durable=False) if args.rate else {}
        durable_paced = await run_relay(paced, tmp, durable=True) if args.rate else {}
    out: dict[str, Any] = {
        "bench": "fanout",
        "subscribers": args.subscribers,
        "writers": args.writers,
        "edits_per_writer": args.edits,
        "encoding": args.encoding,
        "durability": "process",
        "hub_cpu_us_per_delivery": hub["cpu_us_per_delivery"],
        "relay_cpu_us_per_delivery": relay["cpu_us_per_delivery"],
        "durable_relay_cpu_us_per_delivery": durable["cpu_us_per_delivery"],
        "cpu_ratio": round(hub["cpu_us_per_delivery"] / relay["cpu_us_per_delivery"], 3),
        "cpu_ratio_durable": round(hub["cpu_us_per_delivery"] / durable["cpu_us_per_delivery"], 3),
        "delivered_per_s": hub["delivered_per_s"],
        "relay_delivered_per_s": relay["delivered_per_s"],
        "durable_relay_delivered_per_s": durable["delivered_per_s"],
        "acked_ops_per_s": hub.get("acked_ops_per_s"),
        "durable_relay_acked_ops_per_s": durable.get("acked_ops_per_s"),
        "hub_unpaced_p50_ms": hub["p50_ms"],
        "hub_unpaced_p99_ms": hub["p99_ms"],
        "relay_unpaced_p99_ms": relay["p99_ms"],
        "durable_relay_unpaced_p99_ms": durable["p99_ms"],
        "hub_unpaced_main_thread_us_per_edit": hub["main_thread_us_per_edit"],
        "hub_unpaced_other_threads_us_per_edit": hub["other_threads_us_per_edit"],
        "hub_peak_rss_mb": hub["peak_rss_mb"],
        "relay_peak_rss_mb": relay["peak_rss_mb"],
        "durable_relay_peak_rss_mb": durable["peak_rss_mb"],
    }
    if args.rate:
        out.update(
            {
                "paced_rate_per_writer": args.rate,
                "hub_p50_ms": hub_paced["p50_ms"],
                "hub_p99_ms": hub_paced["p99_ms"],
                "hub_max_ms": hub_paced["max_ms"],
                "relay_paced_p99_ms": relay_paced["p99_ms"],
                "durable_relay_paced_p50_ms": durable_paced["p50_ms"],
                "durable_relay_paced_p99_ms": durable_paced["p99_ms"],
                "hub_paced_cpu_us_per_delivery": hub_paced["cpu_us_per_delivery"],
                "hub_paced_main_thread_us_per_edit": hub_paced["main_thread_us_per_edit"],
                "hub_paced_other_threads_us_per_edit": hub_paced["other_threads_us_per_edit"],
                "durable_relay_paced_main_thread_us_per_edit": durable_paced[
                    "main_thread_us_per_edit"
                ],
                "durable_relay_paced_other_threads_us_per_edit": durable_paced[
                    "other_threads_us_per_edit"
                ],
                "relay_paced_cpu_us_per_delivery": relay_paced["cpu_us_per_delivery"],
                "durable_relay_paced_cpu_us_per_delivery": durable_paced["cpu_us_per_delivery"],
                "paced_cpu_ratio_durable": round(
                    hub_paced["cpu_us_per_delivery"] / durable_paced["cpu_us_per_delivery"], 3
                ),
            }
        )
    return out


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--subscribers", "-S", type=int, default=50)
    p.add_argument("--writers", "-W", type=int, default=5)
    p.add_argument("--edits", "-E", type=int, default=2000, help="edits per writer")
    p.add_argument(
        "--rate",
        type=float,
        default=50.0,
        help="paced run: edits/s per writer (0 skips the paced run)",
    )
    p.add_argument("--encoding", choices=["msgpack", "json"], default="msgpack")
    p.add_argument("--profile", metavar="FILE", help="profile the paced hub phase only")
    p.add_argument(
        "--workers", type=int, default=1, help="N > 1: one process against N workers on Redis"
    )
    p.add_argument(
        "--no-limits",
        action="store_true",
        help="rate limits off (with --workers they are checked in Redis, once per message)",
    )
    p.add_argument(
        "--writers-together",
        action="store_true",
        help="with --workers: every writer on one worker (deliveries cross processes, the "
        "writes do not: no two processes take turns on the tenant's write lock)",
    )
    args = p.parse_args()
    global LIMITS_OFF
    LIMITS_OFF = args.no_limits
    args.encoding = MSGPACK if args.encoding == "msgpack" else JSON
    if args.profile:
        args.profile = os.path.abspath(args.profile)  # the server runs in another directory
    return args


def plots(result: dict[str, Any]) -> dict[str, report.Plot]:
    """Latency CDFs, deliveries/s and server RSS over time, CPU per delivery: hub vs relay."""
    if "profile" in result or result.get("mode") == "workers":
        return {}
    names = [  # the order main() runs them in
        *("relay, unpaced", "durable relay, unpaced", "hub, unpaced"),
        *("hub, paced", "relay, paced", "durable relay, paced"),
    ]
    runs = dict(zip(names, PLOT_DATA, strict=False))
    load = f"{result['subscribers']} subscribers, {result['writers']} writers"
    paced = {k: v for k, v in runs.items() if "unpaced" not in k}
    cpu = {
        "unpaced": {
            "hub (durable)": result["hub_cpu_us_per_delivery"],
            "bare relay": result["relay_cpu_us_per_delivery"],
            "durable relay": result["durable_relay_cpu_us_per_delivery"],
        }
    }
    if "hub_paced_cpu_us_per_delivery" in result:
        cpu["paced"] = {
            "hub (durable)": result["hub_paced_cpu_us_per_delivery"],
            "bare relay": result["relay_paced_cpu_us_per_delivery"],
            "durable relay": result["durable_relay_paced_cpu_us_per_delivery"],
        }
    rate = result.get("paced_rate_per_writer")
    return {
        "latency": lambda: report.cdf_plot(
            "fanout: send → receipt latency, "
            + (f"paced at {rate:g} edits/s per writer" if paced else "unpaced")
            + f"\n{load}",
            {k: v["latency_ms"] for k, v in (paced or runs).items()},
            log_x=True,
        ),
        "throughput": lambda: report.series_plot(
            f"fanout: deliveries/s over time, unpaced ({load})",
            {k: v["rate"] for k, v in runs.items() if "unpaced" in k},
            "deliveries/s",
        ),
        "rss": lambda: report.series_plot(
            "fanout: server RSS during each run",
            {k: v["rss"] for k, v in runs.items()},
            "RSS (MiB)",
        ),
        "cpu": lambda: report.bar_plot(
            "fanout: server CPU per delivered edit, hub against its baselines",
            cpu,
            "µs CPU per delivery",
        ),
    }


if __name__ == "__main__":
    result = uvloop.run(main(parse()))
    result["encoding"] = "json" if result["encoding"] == JSON else "msgpack"
    report.emit(result, plots(result))
