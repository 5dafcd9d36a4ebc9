"""Idle footprint of ``hypertab serve`` (embedded default): RSS at rest and after one session.

Starts ``python -m server.cli serve --data-dir D --port 0 --port-file F`` (no Redis, no JWT,
no TLS: what a first user runs) ``--runs`` times on a fresh data directory with one tenant.
For each run it reads the server's RSS from /proc 1 s after the port file appears, then
opens one authenticated WebSocket (API key, msgpack), waits for ``welcome``, subscribes to
nothing, closes, waits 1 s and reads RSS again; then it reads the server's CPU time over
``--idle-seconds`` with no connection (background pollers, timers). It also lists the
compiled extension modules the server has mapped from site-packages (which heavy packages
start-up loaded).
Prints one JSON line with the ranges over the runs.

    .venv/bin/python bench/idle.py [--runs 3] [--idle-seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from protocol.codec import MSGPACK
from server.auth.principal import Plan
from server.config import load_pepper
from server.control.plane import ControlPlane

ROOT = Path(__file__).resolve().parent.parent


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def extension_packages(pid: int) -> list[str]:
    """Top-level packages of the site-packages extension modules mapped by ``pid``."""
    found: set[str] = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        path = line.split()[-1]
        if "site-packages/" in path and path.endswith(".so"):
            found.add(path.split("site-packages/", 1)[1].split("/", 1)[0])
    return sorted(found)


async def make_key(data: Path) -> str:
    plane = await ControlPlane.open(data, pepper=load_pepper(data), watch=False)
    try:
        _, issued = await plane.create_tenant("idle", Plan.FREE, now=time.time())
        return issued.secret
    finally:
        await plane.close()


async def one_session(port: int, key: str) -> None:
    async with connect(
        f"ws://127.0.0.1:{port}/v1/ws",
        additional_headers={"Authorization": f"Bearer {key}"},
        subprotocols=[MSGPACK],  # type: ignore[list-item]
        compression=None,
    ) as conn:
        await conn.recv()  # welcome


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (from /proc/PID/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(tmp: Path, idle_seconds: float) -> dict[str, Any]:
    data = tmp / "data"
    key = asyncio.run(make_key(data))
    port_file = tmp / "port"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    cmd = [sys.executable, "-m", "server.cli", "serve", "--data-dir", str(data)]
    cmd += ["--port", "0", "--port-file", str(port_file), "--log-level", "WARNING"]
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.perf_counter() - started > 30:
                raise SystemExit("server did not start")
            time.sleep(0.01)
        start_s = time.perf_counter() - started
        time.sleep(1.0)
        idle = rss_mib(proc.pid)
        asyncio.run(one_session(int(port_file.read_text()), key))
        time.sleep(1.0)
        after = rss_mib(proc.pid)
        cpu0 = cpu_s(proc.pid)
        time.sleep(idle_seconds)
        idle_cpu = (cpu_s(proc.pid) - cpu0) / idle_seconds * 1e3
        return {
            "idle_cpu": idle_cpu,
            "start_s": start_s,
            "idle": idle,
            "after": after,
            "extensions": extension_packages(proc.pid),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(one_run(Path(tmp), args.idle_seconds))

    def span(name: str, digits: int = 1) -> list[float]:
        values = [r[name] for r in runs]
        return [round(min(values), digits), round(max(values), digits)]

    print(
        json.dumps(
            {
                "bench": "idle",
                "runs": args.runs,
                "idle_rss_mib": span("idle"),
                "rss_after_one_session_mib": span("after"),
                "start_to_listening_s": span("start_s", 2),
                "idle_cpu_ms_per_s": span("idle_cpu", 2),
                "extension_packages": runs[-1]["extensions"],
            }
        )
    )


if __name__ == "__main__":
    main()
