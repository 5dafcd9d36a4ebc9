"""``serve --workers 3`` spreads connections evenly, keeps serving while a worker is down,
and owns its port.

Each worker slot accepts on a ``SO_REUSEPORT`` socket of its own (server/workers/listen.py):
the kernel hashes every connection to one of them. With one shared socket whichever worker
woke first took the queue: 4,162 to 13,579 of 40,000 connections on 5 workers, so one of
them reached its file limit long before the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from scaleout_process import Supervised, env_for, hypertab_argv, supervised_tenant, wait_for
from websockets.asyncio.client import ClientConnection, connect

from protocol.codec import JSON, codec_for
from protocol.messages import Welcome

WORKERS = 3
CONNECTIONS = 240
CODEC = codec_for(JSON)


@pytest.fixture(scope="module")
def supervised(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[tuple]:
    with supervised_tenant(tmp_path_factory.mktemp("balance") / "data", redis_url, WORKERS) as up:
        yield up


async def _open(url: str, key: str) -> ClientConnection:
    conn = await connect(
        url,
        additional_headers={"Authorization": f"Bearer {key}"},
        subprotocols=[JSON],  # type: ignore[list-item]
        open_timeout=10,
    )
    assert isinstance(CODEC.decode_server(await conn.recv()), Welcome)
    return conn


def _holders(hub: Supervised) -> Counter[int]:
    """How many established connections to the hub's port each worker holds."""
    held: Counter[int] = Counter()
    for pid in hub.worker_pids():
        with contextlib.suppress(psutil.Error):
            for c in psutil.Process(pid).net_connections("tcp"):
                if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == hub.port:
                    held[pid] += 1
    return held


def _listening(hub: Supervised) -> int:
    """The supervisor's sockets listening on the hub's port (one per live worker slot)."""
    assert hub.proc is not None
    return sum(
        1
        for c in psutil.Process(hub.proc.pid).net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == hub.port
    )


async def test_connections_are_spread_evenly_over_the_workers(
    supervised: tuple[Supervised, str],
) -> None:
    hub, key = supervised
    conns: list[ClientConnection] = []
    try:
        for _ in range(CONNECTIONS // 20):  # 20 handshakes in flight at a time
            conns += await asyncio.gather(*(_open(hub.url, key) for _ in range(20)))
        held = await asyncio.to_thread(_holders, hub)
        assert sum(held.values()) == CONNECTIONS and len(held) == WORKERS
        # Hashed: 80 each, give or take ~8 (one standard deviation); a worker that woke
        # first used to take most of every burst.
        assert all(40 <= n <= 120 for n in held.values()), held
    finally:
        await asyncio.gather(*(c.close() for c in conns))


async def test_while_a_worker_is_down_every_new_connection_reaches_another(
    supervised: tuple[Supervised, str],
) -> None:
    hub, key = supervised
    victim = min(hub.worker_pids())
    os.kill(victim, signal.SIGKILL)
    # The supervisor closes the dead slot's socket as soon as it sees the exit; the
    # replacement starts 0.5 s later and takes a second or more to listen.
    await wait_for(lambda: _listening(hub) == WORKERS - 1, timeout=10)
    conns = await asyncio.gather(*(_open(hub.url, key) for _ in range(30)))
    try:
        assert victim not in {p for p in await asyncio.to_thread(_holders, hub)}
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    await wait_for(lambda: _listening(hub) == WORKERS and len(hub.worker_pids()) == WORKERS)
    conns = await asyncio.gather(*(_open(hub.url, key) for _ in range(60)))
    try:  # the replacement gets its share again
        assert len(await asyncio.to_thread(_holders, hub)) == WORKERS
    finally:
        await asyncio.gather(*(c.close() for c in conns))


def test_a_second_server_on_the_port_is_refused(
    supervised: tuple[Supervised, str], tmp_path: Path, redis_url: str
) -> None:
    """The workers' reuseport group admits no one else, not even another supervisor of the
    same user (which a reuseport bind alone would let in to take a share)."""
    hub, _ = supervised
    for workers in ("1", "2"):
        done = subprocess.run(
            [*hypertab_argv(), "serve", "--data-dir", str(tmp_path / workers),
             "--port", str(hub.port), "--workers", workers, "--log-level", "ERROR"],
            capture_output=True,
            text=True,
            env=env_for(redis_url),
            timeout=60,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert f"cannot listen on 127.0.0.1:{hub.port}" in done.stderr
