"""Authenticated WebSocket handshakes per second, API key and JWT, against a real server.

The server runs in a subprocess (``hypertab serve --port 0 --port-file F``, uvloop, INFO
logs to a file), on a fresh data directory with one tenant. The bench process opens
``--count`` connections per credential kind, ``--concurrency`` at a time (client on
uvloop too); each one does the full handshake (TCP, HTTP upgrade, credential verified
against control.db or by HS256 signature and claims, welcome received) and then closes.
JWTs are signed beforehand, so only the server's verification is measured.

Server CPU per connect-welcome-close cycle is read from the server process (user + system,
/proc) around each measured phase. The same cycles also run against a bare ``websockets`` +
uvloop server in its own process (bench/relay_server.py ``--welcome``: no auth, sends one
frame of the welcome's size, waits for the close), started beside the hub, and the phases
alternate: ``--rounds`` rounds of API key, JWT, bare, each ``--count / --rounds``
handshakes, so a burst of load from elsewhere on the machine falls on all three and
``cpu_ratio`` (hub / bare, CPU averaged over the rounds) compares them fairly.
``--profile FILE`` runs the hub's server under cProfile (main thread) for the API-key
phase only and writes the stats there. Prints one JSON line.

    .venv/bin/python bench/handshake.py [--count 3000] [--concurrency 50] [--rounds 3]
                                        [--profile FILE] [--workers N]

``--workers N`` (N > 1) runs ``hypertab serve --workers N`` with a private redis-server:
the hub's CPU is then summed over the supervisor, every worker and Redis, and
``worker_cpu_share`` says how each phase's CPU split between the workers (the kernel hands
each connection to whichever worker accepts first).
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

import jwt as pyjwt
import proctree
import psutil
import report
from crossnode import free_port, redis_server
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


ROOT = Path(__file__).resolve().parent.parent
# The hub's welcome for these keys is ~330 bytes of msgpack; the bare server sends as much.
WELCOME_BYTES = 330
# ``hypertab serve`` with its main thread under cProfile (see bench/fanout.py).
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
        LATENCIES_MS.setdefault(label, []).extend(s * 1e3 for s in latencies)
    latencies.sort()
    return {
        "per_s": round(count / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1e3, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1e3, 2),
    }


async def _measured(
    url: str,
    credentials: list[str],
    count: int,
    concurrency: int,
    server: list[psutil.Process],
    label: str = "",
) -> dict[str, Any]:
    each0 = [proctree.cpu_seconds([p]) for p in server]
    result: dict[str, Any] = await _run(url, credentials, count, concurrency, label)
    spent = [proctree.cpu_seconds([p]) - c for p, c in zip(server, each0, strict=True)]
    result["server_cpu_ms"] = round(sum(spent) / count * 1e3, 3)
    workers = [s for p, s in zip(server, spent, strict=True) if "--worker-fd" in p.cmdline()]
    if len(workers) > 1:
        result["worker_cpu_share"] = [round(w / sum(workers), 2) for w in workers]
    return result


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of one phase as one: CPU averaged, the rates' and latencies' spread kept."""
    merged: dict[str, Any] = {
        "per_s": round(statistics.median(p["per_s"] for p in parts), 1),
        "p50_ms": round(statistics.median(p["p50_ms"] for p in parts), 2),
        "p99_ms": round(max(p["p99_ms"] for p in parts), 2),
        "server_cpu_ms": round(statistics.mean(p["server_cpu_ms"] for p in parts), 3),
        "server_cpu_ms_rounds": [p["server_cpu_ms"] for p in parts],
    }
    if "worker_cpu_share" in parts[0]:
        merged["worker_cpu_share"] = [p["worker_cpu_share"] for p in parts]
    return merged


async def _measure(
    hub: tuple[str, list[psutil.Process]],
    bare: tuple[str, list[psutil.Process]] | None,
    secrets: list[str],
    tokens: list[str],
    args: Any,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Warm both servers up, then alternate API key, JWT and bare rounds, so that the
    machine's load (shared with other work) falls on all three alike."""
    url, server = hub
    await _run(url, secrets, 200, args.concurrency)  # warm-up
    if args.profile:
        api = await _measured(url, secrets, args.count, args.concurrency, server, "API key")
        return api, {}, {}
    await _run(url, tokens, 200, args.concurrency)
    assert bare is not None
    await _run(bare[0], secrets, 200, args.concurrency)
    per_round = max(1, args.count // args.rounds)
    phases: dict[str, list[dict[str, Any]]] = {"api": [], "jwt": [], "bare": []}
    for _ in range(args.rounds):
        phases["api"].append(
            await _measured(url, secrets, per_round, args.concurrency, server, "API key")
        )
        phases["jwt"].append(
            await _measured(url, tokens, per_round, args.concurrency, server, "JWT (HS256)")
        )
        phases["bare"].append(
            await _measured(
                bare[0], secrets, per_round, args.concurrency, bare[1], "bare websockets (no auth)"
            )
        )
    return _merge(phases["api"]), _merge(phases["jwt"]), _merge(phases["bare"])


def _start(command: list[str], port_file: Path, env: dict[str, str], log: Any) -> Any:
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while not (port_file.exists() and port_file.read_text().strip()):
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise SystemExit("server did not start")
        time.sleep(0.05)
    return server


def _stop(server: Any) -> None:
    server.terminate()
    server.wait(timeout=30)


def _loop_run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=3000, help="handshakes per phase")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--rounds", type=int, default=3, help="each phase split into this many alternating rounds"
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile the hub's API-key phase")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers N (Redis)")
    args = parser.parse_args()
    if args.profile:
        args.profile = os.path.abspath(args.profile)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        data = Path(tmp) / "data"
        secrets, tokens = asyncio.run(_prepare(data, 10))
        port_file = Path(tmp) / "port"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
        env["HYPERTAB_JWT_SECRET"] = SECRET
        python = [sys.executable, "-m", "server.cli"]
        if args.profile:
            python = [sys.executable, "-c", PROFILED_SERVE, args.profile]
        command = [*python, "serve", "--port", "0"]
        redis = None
        if args.workers > 1:
            redis_port = free_port()
            redis = redis_server(redis_port, Path(tmp))
            stack.callback(_stop, redis)
            env["HYPERTAB_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
            command += ["--workers", str(args.workers)]
        log = stack.enter_context(open(Path(tmp) / "server.log", "wb"))
        server = _start(
            [*command, "--port-file", str(port_file), "--data-dir", str(data)], port_file, env, log
        )
        stack.callback(_stop, server)
        supervisor = psutil.Process(server.pid)  # its workers listen once the port file is written
        procs = proctree.tree(supervisor)
        if redis is not None:
            procs.append(psutil.Process(redis.pid))
        hub = (f"ws://127.0.0.1:{int(port_file.read_text())}/v1/ws", procs)
        bare = None
        if not args.profile:
            # The same cycles against a bare websockets server (the credential header is
            # sent and ignored, so both servers parse the same request).
            bare_port = Path(tmp) / "bare.port"
            bare_log = stack.enter_context(open(Path(tmp) / "bare.log", "wb"))
            bare_server = _start(
                [
                    sys.executable,
                    str(ROOT / "bench" / "relay_server.py"),
                    str(bare_port),
                    "--welcome",
                    str(WELCOME_BYTES),
                ],
                bare_port,
                os.environ.copy(),
                bare_log,
            )
            stack.callback(_stop, bare_server)
            bare = (
                f"ws://127.0.0.1:{int(bare_port.read_text())}/",
                [psutil.Process(bare_server.pid)],
            )
        api, jwt, bare_result = _loop_run(_measure(hub, bare, secrets, tokens, args))
    out: dict[str, Any] = {
        "bench": "handshake",
        "server": "subprocess (hypertab serve, uvloop)",
        "workers": args.workers,
        "count": args.count,
        "concurrency": args.concurrency,
        "api_key": api,
        "jwt": jwt,
        "bare_websockets": bare_result,
    }
    if bare_result:
        out["rounds"] = args.rounds
        out["cpu_ratio_api_key"] = round(api["server_cpu_ms"] / bare_result["server_cpu_ms"], 3)
        out["cpu_ratio_jwt"] = round(jwt["server_cpu_ms"] / bare_result["server_cpu_ms"], 3)
    report.emit(
        out,
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
