"""``hypertab serve --workers 2``: real supervisor, real workers, real Redis, SDK clients.

Which worker holds a connection is read from the kernel (psutil: the worker's sockets), so
the tests can put clients on both workers and kill the right one.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from scaleout_process import (
    Supervised,
    create_tenant,
    env_for,
    hypertab_argv,
    on_each_worker,
    supervised_tenant,
    wait_for,
)
from websockets.asyncio.client import ClientConnection, connect

from client_sdk import Client
from protocol.codec import JSON, codec_for
from protocol.messages import Error, ToolCall, Welcome
from protocol.ops import InsertRows, NewRow

ROWS = 60
CODEC = codec_for(JSON)


@pytest.fixture(scope="module")
def supervised(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[tuple]:
    """A `serve --workers 2` on a data dir with one tenant, and the tenant's admin key."""
    with supervised_tenant(tmp_path_factory.mktemp("workers") / "data", redis_url) as up:
        yield up


def local_port(client: Client) -> int:
    # The SDK does not expose its socket; the test must know which worker holds it.
    conn = client._conn
    assert conn is not None
    port: int = conn.local_address[1]
    return port


async def test_a_killed_worker_is_replaced_and_its_clients_resume_on_another(
    supervised: tuple[Supervised, str],
) -> None:
    hub, key = supervised
    before = hub.worker_pids()
    assert len(before) == 2

    async def open_client() -> Client:
        return await Client.connect(hub.url, api_key=key)

    clients = await on_each_worker(hub, open_client, local_port)
    try:
        victim, survivor = sorted(clients)
        writer, there = clients[victim][0], clients[survivor][0]
        table = await writer.create_table("Log", [("n", "N", "number")])
        remote = await there.table("Log")
        acked: dict[str, int] = {}

        async def write() -> None:
            for n in range(ROWS):  # in flight when the worker dies: resent, acked once
                row = f"r{n}"
                acked[row] = await table.apply([InsertRows(rows=[NewRow(id=row, values={"n": n})])])

        writing = asyncio.create_task(write())
        await wait_for(lambda: len(acked) >= 10)
        os.kill(victim, signal.SIGKILL)
        async with asyncio.timeout(60):
            await writing
        assert set(acked) == {f"r{n}" for n in range(ROWS)}
        assert len(set(acked.values())) == ROWS  # each applied once: one version each
        assert (await asyncio.to_thread(hub.worker_of, local_port(writer))) != victim
        # Both replicas (the writer's, resumed after its reconnect, and the other
        # worker's) hold every acknowledged row, with its value.
        want = {f"r{n}": {"n": n} for n in range(ROWS)}
        for replica in (table, remote):
            await wait_for(lambda r=replica: r.rows == want)  # type: ignore[misc]
        page = await there.query("Log", limit=1000)
        assert {row.id: row.values for row in page.rows} == want
        # The supervisor started a replacement: two workers again, a new pid among them.
        await wait_for(lambda: len(hub.worker_pids() - before) == 1 and len(hub.worker_pids()) == 2)
        assert victim not in hub.worker_pids()
    finally:
        for group in clients.values():
            for client in group:
                await client.close()


async def _raw(url: str, key: str) -> ClientConnection:
    conn = await connect(
        url, additional_headers={"Authorization": f"Bearer {key}"}, subprotocols=[JSON]
    )  # type: ignore[list-item]
    assert isinstance(CODEC.decode_server(await conn.recv()), Welcome)
    return conn


def _raw_port(conn: ClientConnection) -> int:
    port: int = conn.local_address[1]
    return port


def _cli(data: Path, *args: str) -> dict:
    done = subprocess.run(
        [*hypertab_argv(), *args, "--json", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        env=env_for(None),
        timeout=60,
        check=True,
    )
    out: dict = json.loads(done.stdout)
    return out


async def test_a_key_revoked_through_one_worker_closes_its_sockets_on_the_other(
    supervised: tuple[Supervised, str],
) -> None:
    hub, admin_key = supervised
    created = await asyncio.to_thread(
        _cli, hub.data_dir, "key", "create", "--tenant", "acme", "--name", "agent",
        "--scope", "tables:read",
    )  # fmt: skip
    agent_id, agent_key = created["key"]["id"], created["key"]["secret"]
    sockets = await on_each_worker(hub, lambda: _raw(hub.url, agent_key), _raw_port)
    admins = await on_each_worker(
        hub, lambda: Client.connect(hub.url, api_key=admin_key, reconnect=False), local_port
    )
    try:
        first, second = sorted(sockets)
        await admins[first][0].keys.revoke(agent_id)  # through the first worker
        for pid in (second, first):  # ... closes its sockets on both, 4003 (revoked)
            for conn in sockets[pid]:
                async with asyncio.timeout(10):
                    await conn.wait_closed()
                assert conn.close_code == 4003
    finally:
        for group in admins.values():
            for client in group:
                await client.close()


async def test_a_key_revoked_by_the_cli_closes_its_sockets_on_every_worker(
    supervised: tuple[Supervised, str],
) -> None:
    hub, _ = supervised
    created = await asyncio.to_thread(
        _cli, hub.data_dir, "key", "create", "--tenant", "acme", "--name", "script",
        "--scope", "tables:read",
    )  # fmt: skip
    sockets = await on_each_worker(hub, lambda: _raw(hub.url, created["key"]["secret"]), _raw_port)
    await asyncio.to_thread(_cli, hub.data_dir, "key", "revoke", created["key"]["id"])
    for conns in sockets.values():
        for conn in conns:
            async with asyncio.timeout(10):
                await conn.wait_closed()
            assert conn.close_code == 4003


async def test_sigterm_drains_every_worker_and_the_supervisor_exits_0(
    supervised: tuple[Supervised, str],
) -> None:
    hub, key = supervised
    workers = hub.worker_pids()
    conns = await on_each_worker(hub, lambda: _raw(hub.url, key), _raw_port)
    code = await asyncio.to_thread(hub.stop)
    assert code == 0
    for group in conns.values():  # every worker closed its sockets: 1001 going away
        for conn in group:
            async with asyncio.timeout(10):
                await conn.wait_closed()
            assert conn.close_code == 1001
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                   for pid in workers)  # fmt: skip


PLAN_LIMIT = 37
REQUESTS = 100
CONNECTIONS = 10


async def test_parallel_requests_through_two_workers_admit_exactly_the_plan_limit(
    tmp_path: Path, redis_url: str
) -> None:
    data = tmp_path / "data"
    key = create_tenant(data, "limited")  # plan free
    hub = Supervised(data, redis_url, env={"HYPERTAB_RATE_LIMITS": f"free={PLAN_LIMIT}"})
    hub.start()
    try:
        by_worker = await on_each_worker(hub, lambda: _raw(hub.url, key), _raw_port)
        conns = [c for group in by_worker.values() for c in group]
        while len(conns) < CONNECTIONS:
            conns.append(await _raw(hub.url, key))
        conns = conns[:CONNECTIONS]
        per_conn = REQUESTS // CONNECTIONS  # under the per-connection burst limit (20/s)

        async def calls(conn: ClientConnection) -> list[bool]:
            for n in range(per_conn):  # all sent before any answer is read
                call = ToolCall(id=n + 1, tool="t", args_digest="1" * 64)
                await conn.send(CODEC.encode(call).decode())
            answers = [CODEC.decode_server(await conn.recv()) for _ in range(per_conn)]
            for answer in answers:
                assert not isinstance(answer, Error) or answer.code == "rate_limited", answer
            return [not isinstance(a, Error) for a in answers]

        async with asyncio.timeout(30):
            results = await asyncio.gather(*(calls(c) for c in conns))
        assert sum(sum(r) for r in results) == PLAN_LIMIT
        for conn in conns:
            await conn.close()
    finally:
        assert hub.stop() == 0


async def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path, redis_url: str) -> None:
    data = tmp_path / "data"
    create_tenant(data, "acme")
    hub = Supervised(data, redis_url).start()
    try:
        workers = [psutil.Process(pid) for pid in hub.worker_pids()]
        assert hub.proc is not None
        hub.proc.kill()  # kill -9: the supervisor runs no code
        hub.proc.wait(timeout=10)
        # Each worker was told by the kernel (SIGTERM) and stopped by itself: no orphans.
        _, alive = await asyncio.to_thread(psutil.wait_procs, workers, 30)
        assert not alive
    finally:
        hub.kill()


pytestmark = pytest.mark.timeout(120)
