"""Alerts, webhooks and incident containment: latency, throughput, commit cost.

One process runs a ``HypertabServer`` (uvloop, ``process`` durability) and a receiver
(stdlib ``ThreadingHTTPServer`` on 127.0.0.1 in a thread). Prints one JSON line.

* ``alert``: ``--alerts`` admin-read events committed one at a time (25 ms apart) on a
  control plane of its own, as a CLI command would; latency = commit returned -> the signed
  POST arrived at the receiver. Default poll (``HYPERTAB_ALERT_POLL`` 0.05 s).
* ``webhook``: one SDK client inserts rows into one table at ``--rate`` edits/s (paced, not
  awaited one by one) for ``--seconds``; a webhook on that table. Reports delivered
  changes/s, the receiver's batches (count, mean and max changes per batch) and the lag
  from an edit's ack to its arrival, p50/p99.
* ``commit_cost``: the group commit's own time per batch (one insert, one batch per
  transaction, ``TenantStore.apply`` awaited), with no webhook and with one webhook on the
  table, alternating rounds, best round of each: what the outbox row costs on the hub's
  commit path.
* ``contain``: ``incident contain`` of a tenant with ``--sockets`` open connections, from
  a control plane without a watcher (the CLI's path: revocation_log + notify poke); time
  from the call to each socket's close frame, p50/max over ``--contain-rounds`` rounds.

    .venv/bin/python bench/alerts.py [--alerts 200] [--rate 1000] [--seconds 5]
    .venv/bin/python bench/alerts.py --commit-only [--commit-rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from client_sdk import Client
from protocol.codec import MSGPACK
from protocol.ops import ColumnDef, ColumnType, CreateTable, InsertRows, NewRow
from server.audit import events
from server.config import Config, load_pepper
from server.control.plane import ControlPlane
from server.lifecycle.service import Lifecycle
from server.secrets.keyring import generate_key_file
from server.store.schema import Durability
from server.store.tenant import TenantStore

SECRET = "bench-alert-secret-0123456789"


async def wait_until(check: Callable[[], bool], within: float) -> None:
    """Poll ``check`` (the receiver runs in another thread: no event to await)."""
    deadline = time.monotonic() + within
    while not check() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)


def summary(samples: list[float]) -> dict[str, float]:
    """p50 / p99 / max in milliseconds."""
    s = sorted(samples)
    if not s:
        return {"n": 0}
    return {
        "p50_ms": round(statistics.median(s) * 1e3, 2),
        "p99_ms": round(s[min(len(s) - 1, int(len(s) * 0.99))] * 1e3, 2),
        "max_ms": round(s[-1] * 1e3, 2),
        "n": len(s),
    }


class Receiver:
    """Records (arrival time, JSON body) of every POST; answers 200."""

    def __init__(self) -> None:
        self.got: list[tuple[float, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.time()
                with receiver.lock:
                    receiver.got.append((at, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def bench_alerts(data: Path, receiver: Receiver, count: int) -> dict[str, Any]:
    plane = await ControlPlane.open(data, pepper=load_pepper(data), watch=False)
    committed: dict[str, float] = {}
    try:
        for i in range(count):
            entry = events.admin_read("bench", f"tenant{i}", time.time(), {"n": i})
            chained = await events.record_control_event(plane, entry)
            committed[f"al_{chained.hash[:32]}"] = time.time()
            await asyncio.sleep(0.025)
        await wait_until(lambda: len(receiver.got) >= count, 10.0)
    finally:
        await plane.close()
    latencies = [at - committed[b["id"]] for at, b in receiver.got if b.get("id") in committed]
    return summary(latencies) | {"received": len(receiver.got)}


async def bench_webhook(
    url: str, data: Path, key: str, tenant: str, receiver: Receiver, rate: int, seconds: float
) -> dict[str, Any]:
    from server.cli import main as cli_main

    async with await Client.connect(url, api_key=key, reconnect=False) as client:
        table = await client.create_table("Hot", [("N", "number")])
        argv = ["webhook", "add", "--tenant", tenant, "--url", receiver.url, "--table", table.id,
                "--json", "--data-dir", str(data)]  # fmt: skip
        with contextlib.redirect_stdout(io.StringIO()):  # the secret: not part of the figures
            code = await asyncio.to_thread(cli_main, argv)
        assert code == 0
        await asyncio.sleep(0.3)
        acked: dict[str, float] = {}

        async def one(n: int) -> None:
            acked[await table.insert({"N": n})] = time.time()

        total = int(rate * seconds)
        start = time.perf_counter()
        tasks = []
        for n in range(total):
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
        sent_s = time.perf_counter() - start

        def delivered() -> int:
            with receiver.lock:
                return sum(len(b.get("changes", [])) for _, b in receiver.got)

        await wait_until(lambda: delivered() >= total, 30.0)
    with receiver.lock:
        batches = [(at, b) for at, b in receiver.got if b.get("type") == "changes"]
    arrival = {
        row["id"]: at
        for at, b in batches
        for c in b["changes"]
        for op in c["ops"]
        for row in op.get("rows", [])
    }
    lags = [arrival[r] - t for r, t in acked.items() if r in arrival]
    sizes = [len(b["changes"]) for _, b in batches]
    span = max(at for at, _ in batches) - min(at for at, _ in batches) if batches else 0.0
    return {
        "edits": total,
        "offered_per_s": round(total / sent_s),
        "delivered": sum(sizes),
        "delivered_per_s": round(sum(sizes) / max(span, sent_s)),
        "batches": len(batches),
        "mean_batch": round(statistics.mean(sizes), 1) if sizes else 0,
        "max_batch": max(sizes) if sizes else 0,
        "lag": summary(lags),
    }


async def bench_commit_cost(workdir: Path, rounds: int, per_round: int) -> dict[str, Any]:
    store = await TenantStore.open(
        "benchcommit00", workdir / "commit.db", durability=Durability.PROCESS,
        on_commit=lambda *_: None,
    )  # fmt: skip
    try:
        column = ColumnDef(id="n", name="N", type=ColumnType.NUMBER)
        done = await store.apply(
            "t1", "bench", "create", [CreateTable(name="T", columns=[column])], "b"
        )
        assert done.error is None, done.error
        table = next(iter(t.id for t in store.tables()))
        times: dict[bool, list[float]] = {False: [], True: []}
        seq = 0
        for r in range(rounds * 2):
            hooked = r % 2 == 1

            def set_hook(conn: Any, on: bool = hooked) -> None:
                conn.execute("DELETE FROM _ht_webhooks")
                conn.execute("DELETE FROM _ht_webhook_outbox")
                if on:
                    conn.execute(
                        "INSERT INTO _ht_webhooks (id, tbl, url, created_at, created_by)"
                        " VALUES ('hk_bench', ?, 'https://x.example/', 0, 'bench')",
                        (table,),
                    )

            await store.run_exclusive(set_hook)
            start = time.perf_counter()
            for _ in range(per_round):
                seq += 1
                op = InsertRows(rows=[NewRow(values={"n": seq})])
                outcome = await store.apply(table, "bench", f"op{seq}", [op], "b")
                assert outcome.error is None
            times[hooked].append((time.perf_counter() - start) / per_round)
    finally:
        await store.close()
    # Best round of each: the machine is shared, and noise only ever adds time.
    plain = min(times[False])
    hooked_t = min(times[True])
    return {
        "per_commit_us_no_webhook": round(plain * 1e6, 1),
        "per_commit_us_one_webhook": round(hooked_t * 1e6, 1),
        "added_us": round((hooked_t - plain) * 1e6, 1),
        "rounds": rounds,
        "commits_per_round": per_round,
    }


async def _open(url: str, key: str) -> ClientConnection:
    conn = await connect(
        url, additional_headers={"Authorization": f"Bearer {key}"},
        subprotocols=[MSGPACK], compression=None, open_timeout=30,  # type: ignore[list-item]
    )  # fmt: skip
    await conn.recv()
    return conn


async def _closed(conn: ClientConnection, start: float, seen: list[float]) -> None:
    await conn.wait_closed()
    seen.append(time.perf_counter() - start)


async def bench_contain(url: str, data: Path, sockets: int, rounds: int) -> dict[str, Any]:
    from server.incident.contain import contain

    closes: list[float] = []
    total: list[float] = []
    for r in range(rounds):
        plane = await ControlPlane.open(data, pepper=load_pepper(data), watch=False)
        lifecycle = await Lifecycle.open(data, plane)
        try:
            record, issued = await lifecycle.create_tenant(f"victim{r}", now=time.time())
            conns = [await _open(url, issued.secret) for _ in range(sockets)]
            start = time.perf_counter()
            seen: list[float] = []
            watchers = [asyncio.create_task(_closed(c, start, seen)) for c in conns]
            await contain(lifecycle, [record], everything=False, now=time.time(), actor="bench")
            total.append(time.perf_counter() - start)
            await asyncio.wait_for(asyncio.gather(*watchers), 10)
            closes.extend(seen)
        finally:
            await lifecycle.close()
            await plane.close()
    return {
        "sockets": sockets,
        "rounds": rounds,
        "close": summary(closes),
        "contain_call": summary(total),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from server.app import HypertabServer

    receiver = Receiver()
    os.environ.update(
        {
            "HYPERTAB_ALERT_WEBHOOK_URL": receiver.url,
            "HYPERTAB_ALERT_WEBHOOK_SECRET": SECRET,
            "HYPERTAB_ALERT_LOG": "off",
            "HYPERTAB_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
            "HYPERTAB_RATE_LIMITS": "off",
        }
    )
    with tempfile.TemporaryDirectory(prefix="hypertab-bench-alerts-") as tmp:
        workdir = Path(tmp)
        if args.commit_only:
            return {"bench": "alerts", "commit_cost": await bench_commit_cost(
                workdir, args.commit_rounds, 500)}  # fmt: skip
        data = workdir / "data"
        data.mkdir()
        generate_key_file(data / "master.keys")
        server = HypertabServer(Config(data_dir=data, port=0))
        await server.start()
        url = f"ws://127.0.0.1:{server.port}/v1/ws"
        try:
            result: dict[str, Any] = {"bench": "alerts"}
            result["alert"] = await bench_alerts(data, receiver, args.alerts)
            receiver.got.clear()
            assert server.services.lifecycle is not None
            tenant, key = await server.services.lifecycle.create_tenant("hot", now=time.time())
            result["webhook"] = await bench_webhook(
                url, data, key.secret, tenant.id, receiver, args.rate, args.seconds
            )
            result["contain"] = await bench_contain(url, data, args.sockets, args.contain_rounds)
        finally:
            await server.stop()
            receiver.stop()
        result["commit_cost"] = await bench_commit_cost(workdir, args.commit_rounds, 500)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sockets", type=int, default=50)
    parser.add_argument("--contain-rounds", type=int, default=5)
    parser.add_argument("--commit-rounds", type=int, default=10)
    parser.add_argument("--commit-only", action="store_true", help="only the commit cost")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(main(parser.parse_args()))), flush=True)
