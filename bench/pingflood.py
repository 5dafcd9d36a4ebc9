"""A flood of WebSocket pings at ``--log-level DEBUG``: how long a new handshake waits meanwhile,
and how many log lines the flood costs.

The server runs in a subprocess (``hypertab serve --log-level DEBUG``, uvloop, logs to a
file), on a fresh data directory with one tenant; rate limits are off unless ``--limits``
(with them on, the flooding connection is closed for rate abuse after 40 pings). One
connection writes ``--pings`` ping frames in one go; right after, a second client opens a
connection (TCP, upgrade, API key verified, welcome received) and that time is reported,
with the time until the flooding connection's next message was answered and the number of
log lines the server wrote. Prints one JSON line.

    .venv/bin/python bench/pingflood.py [--pings 30000] [--limits]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from protocol.codec import JSON
from server.config import load_pepper
from server.control.plane import ControlPlane


async def _prepare(data: Path) -> str:
    plane = await ControlPlane.open(data, pepper=load_pepper(data), watch=False)
    try:
        _, admin = await plane.create_tenant("bench", now=time.time())
    finally:
        await plane.close()
    return admin.secret


def _ping_frames(n: int) -> bytes:
    mask = b"\x00\x00\x00\x00"  # a zero mask leaves the payload as it is
    return (struct.pack("!BB", 0x89, 0x80 | 4) + mask + b"ping") * n


async def _measure(url: str, key: str, pings: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    flooder = await connect(url, additional_headers=headers, subprotocols=[JSON])  # type: ignore[list-item]
    await flooder.recv()
    start = time.perf_counter()
    flooder.transport.write(_ping_frames(pings))  # raw frames, after the library's own
    await flooder.send('{"type":"ping","id":1}')
    async with connect(
        url,
        additional_headers=headers,
        subprotocols=[JSON],  # type: ignore[list-item]
        open_timeout=120,
    ) as fresh:
        await fresh.recv()
        handshake = time.perf_counter() - start
    answered: float | None = None
    try:
        await asyncio.wait_for(flooder.recv(), 120)
        answered = time.perf_counter() - start
    except Exception:  # closed for rate abuse: no answer
        answered = None
    close_code = flooder.close_code
    await flooder.close()
    return {
        "handshake_during_flood_ms": round(handshake * 1e3, 1),
        "flood_answered_ms": round(answered * 1e3, 1) if answered is not None else None,
        "flooder_close_code": close_code,
    }


def _loop_run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pings", type=int, default=30_000)
    parser.add_argument("--limits", action="store_true", help="keep the default rate limits")
    parser.add_argument("--log-level", default="DEBUG")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        key = asyncio.run(_prepare(data))
        port_file = Path(tmp) / "port"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
        if not args.limits:
            env["HYPERTAB_RATE_LIMITS"] = "off"
        command = [sys.executable, "-m", "server.cli", "serve", "--port", "0"]
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                [
                    *command,
                    *("--log-level", args.log_level, "--port-file", str(port_file)),
                    *("--data-dir", str(data)),
                ],
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
                before = len(log_path.read_bytes().splitlines())
                figures = _loop_run(_measure(url, key, args.pings))
                time.sleep(0.5)  # let the server finish writing
                lines = log_path.read_bytes().splitlines()[before:]
            finally:
                server.terminate()
                server.wait(timeout=60)
    print(
        json.dumps(
            {
                "bench": "pingflood",
                "server": f"subprocess (hypertab serve --log-level {args.log_level}, uvloop)",
                "pings": args.pings,
                "rate_limits": "default" if args.limits else "off",
                **figures,
                "log_lines": len(lines),
                "frame_log_lines": sum(1 for line in lines if b"PING" in line or b"PONG" in line),
            }
        )
    )


if __name__ == "__main__":
    main()
