"""Durable, acknowledged ops/s for one tenant through ``TenantStore``, against raw SQLite.

How it works
------------
For each durability level (``process``: WAL + ``synchronous=NORMAL``; ``power``: WAL +
``synchronous=FULL``):

1. **Store.** ``--producers`` tasks (64 by default: 64 batches in flight) submit single-op
   batches (3 of 4 ``update_cells`` on a random seeded row, 1 of 4 ``insert_rows``) to one
   ``TenantStore`` and wait for each ack (the future resolves after COMMIT), until ``--ops``
   are acked. The ``on_commit`` hook records the size of every group commit.
2. **Baseline.** Plain ``sqlite3`` in one thread, same pragmas, same table shape
   (``_id``, ``_ord``, two value columns) and the same op-log table, applies the same op mix
   in transactions of exactly the group sizes the store used: per op, the row write plus one
   op-log row holding the msgpack-encoded change. No asyncio, no savepoints, no planning:
   the floor a store with the same durability could reach.

``ratio`` = store / baseline (target >= 0.5). ``writer_cpu_us_per_op`` is the CPU time of
the store's writer thread per acked op (read with ``time.thread_time`` in a function the
store runs on its writer, ``run_exclusive``), ``loop_cpu_us_per_op`` the event loop
thread's (which also runs the producers). ``--producers 1`` gives one batch per group, the
shape of human-paced edits. Prints one JSON line.

    .venv/bin/python bench/commit.py [--ops 50000] [--producers 64] [--durability process]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import report

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol.messages import Change
from protocol.ops import (
    ColumnDef,
    ColumnType,
    CreateTable,
    InsertRows,
    NewRow,
    Op,
    UpdateCells,
)
from server.store.schema import Durability
from server.store.tenant import TenantStore

SEED_ROWS = 1000
TABLE = "bench"
TENANT = "benchtenant0001"
T = TypeVar("T")


def op_for(i: int, rng: random.Random) -> Op:
    """The i-th op of the mix: one insert in four, else an update of a seeded row."""
    if i % 4 == 0:
        return InsertRows(rows=[NewRow(id=f"n{i}", values={"name": f"row {i}", "n": i})])
    return UpdateCells(row=f"r{rng.randrange(SEED_ROWS)}", values={"n": i, "name": f"v{i}"})


def filesystem_of(path: Path) -> str:
    """The filesystem type holding ``path`` (fsync on tmpfs is free: say so)."""
    best, fstype = "", "unknown"
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                parts = line.split()
                mount = parts[1]
                if str(path).startswith(mount) and len(mount) > len(best):
                    best, fstype = mount, parts[2]
    except OSError:
        pass
    return fstype


def writer_thread_time(conn: object) -> float:
    """CPU seconds of the thread it runs in: the store's writer thread (via ``run_exclusive``)."""
    return time.thread_time()


# --- the store ------------------------------------------------------------------------------


async def run_store(
    directory: Path, durability: Durability, total: int, producers: int
) -> dict[str, Any]:
    groups: list[int] = []

    def on_commit(tenant: str, table: str, changes: list[Change]) -> None:
        groups.append(len(changes))

    store = await TenantStore.open(
        TENANT, directory / "store.db", durability=durability, on_commit=on_commit
    )
    stack = ExitStack()
    try:
        columns = [
            ColumnDef(id="name", name="name", type=ColumnType.TEXT),
            ColumnDef(id="n", name="n", type=ColumnType.NUMBER),
        ]
        out = await store.apply(TABLE, "setup", "create", [CreateTable("bench", columns)], "b")
        assert out.error is None, out.error
        seed = [NewRow(id=f"r{i}", values={"name": f"seed {i}", "n": i}) for i in range(SEED_ROWS)]
        out = await store.apply(TABLE, "setup", "seed", [InsertRows(rows=seed)], "b")
        assert out.error is None, out.error
        groups.clear()

        next_op = 0
        latencies: list[float] = []
        acked_at: list[float] = []
        bar = stack.enter_context(report.progress(total, f"commit {durability.value}", "op"))

        async def producer(index: int) -> None:
            nonlocal next_op
            rng = random.Random(index)
            client = f"c{index}"
            while next_op < total:
                i = next_op
                next_op += 1
                sent = time.perf_counter()
                outcome = await store.apply(TABLE, client, f"o{i}", [op_for(i, rng)], "bench")
                now = time.perf_counter()
                latencies.append(now - sent)
                acked_at.append(now)
                bar.update()
                if outcome.error is not None:
                    raise RuntimeError(f"op {i} refused: {outcome.error}")

        writer_cpu = await store.run_exclusive(writer_thread_time)
        loop_cpu = time.thread_time()
        started = time.perf_counter()
        await asyncio.gather(*(producer(p) for p in range(producers)))
        elapsed = time.perf_counter() - started
        loop_cpu = time.thread_time() - loop_cpu
        writer_cpu = await store.run_exclusive(writer_thread_time) - writer_cpu
    finally:
        stack.close()
        await store.close()
    assert sum(groups) == total, (sum(groups), total)
    acked_rate = report.rate_over_time(acked_at, started)
    ack_ms = [t * 1000 for t in latencies]
    latencies.sort()
    return {
        "ops_s": round(total / elapsed),
        "seconds": round(elapsed, 3),
        "writer_cpu_us_per_op": round(writer_cpu / total * 1e6, 1),
        "loop_cpu_us_per_op": round(loop_cpu / total * 1e6, 1),
        "commits": len(groups),
        "mean_group": round(statistics.fmean(groups), 1),
        "ack_ms_p50": round(latencies[len(latencies) // 2] * 1000, 2),
        "ack_ms_p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "groups": groups,
        "ack_ms": ack_ms,
        "acked_rate": acked_rate,
    }


# --- the raw SQLite baseline ----------------------------------------------------------------

BASELINE_DDL = """
CREATE TABLE t_1 (_id TEXT PRIMARY KEY, _ord TEXT NOT NULL, c_1, c_2);
CREATE INDEX t_1_ord ON t_1 (_ord);
CREATE TABLE oplog (
    tbl TEXT NOT NULL, version INTEGER NOT NULL, client TEXT NOT NULL, op TEXT NOT NULL,
    ts REAL NOT NULL, change BLOB NOT NULL, PRIMARY KEY (tbl, version)
) WITHOUT ROWID;
CREATE UNIQUE INDEX oplog_idem ON oplog (tbl, client, op);
"""


def run_baseline(path: Path, durability: Durability, groups: list[int]) -> dict[str, Any]:
    """Same ops, same transaction sizes, plain sqlite3 in this (non-event-loop) thread."""
    encoder = msgspec.msgpack.Encoder()
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if durability is Durability.POWER else 'NORMAL'}")
        conn.executescript(BASELINE_DDL)
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO t_1 (_id, _ord, c_1, c_2) VALUES (?, ?, ?, ?)",
            ((f"r{i}", f"a{i:08d}", f"seed {i}", i) for i in range(SEED_ROWS)),
        )
        conn.execute("COMMIT")
        rngs = [random.Random(p) for p in range(64)]
        version = 2
        i = 0
        started = time.perf_counter()
        for size in groups:
            conn.execute("BEGIN IMMEDIATE")
            for _ in range(size):
                op = op_for(i, rngs[i % len(rngs)])
                client, op_id = f"c{i % 64}", f"o{i}"
                if isinstance(op, InsertRows):
                    row = op.rows[0]
                    conn.execute(
                        "INSERT INTO t_1 (_id, _ord, c_1, c_2) VALUES (?, ?, ?, ?)",
                        (row.id, f"b{i:08d}", row.values["name"], row.values["n"]),
                    )
                else:
                    assert isinstance(op, UpdateCells)
                    conn.execute(
                        "UPDATE t_1 SET c_1 = ?, c_2 = ? WHERE _id = ?",
                        (op.values["name"], op.values["n"], op.row),
                    )
                version += 1
                change = Change(version=version, ops=[op], by="bench", client=client, op=op_id)
                conn.execute(
                    "INSERT INTO oplog (tbl, version, client, op, ts, change)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (TABLE, version, client, op_id, time.time(), encoder.encode(change)),
                )
                i += 1
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    return {"ops_s": round(i / elapsed), "seconds": round(elapsed, 3)}


def baseline_in_thread(path: Path, durability: Durability, groups: list[int]) -> dict[str, Any]:
    result: dict[str, Any] = {}

    def target() -> None:
        result.update(run_baseline(path, durability, groups))

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if not result:
        raise RuntimeError("baseline failed")
    return result


# --- main -----------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, root: Path, series: dict[str, Any]) -> dict[str, Any]:
    levels = [Durability(args.durability)] if args.durability else list(Durability)
    report: dict[str, Any] = {
        "bench": "commit",
        "ops": args.ops,
        "producers": args.producers,
        "op_mix": "1/4 insert_rows, 3/4 update_cells; one op per batch",
        "filesystem": filesystem_of(root),
    }
    for level in levels:
        work = root / level.value
        work.mkdir()
        store = await run_store(work, level, args.ops, args.producers)
        groups = store.pop("groups")
        series[level.value] = (store.pop("ack_ms"), store.pop("acked_rate"))
        base = baseline_in_thread(work / "baseline.db", level, groups)
        report[level.value] = {
            "synchronous": "FULL" if level is Durability.POWER else "NORMAL",
            "store": store,
            "sqlite_baseline": base,
            "ratio": round(store["ops_s"] / base["ops_s"], 3),
        }
    return report


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run under uvloop (as ``hypertab serve`` does) when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=50_000, help="acked ops per level")
    parser.add_argument("--producers", type=int, default=64, help="batches in flight")
    parser.add_argument(
        "--durability", choices=[d.value for d in Durability], help="one level (default: both)"
    )
    parser.add_argument("--dir", help="where the databases go (default: $TMPDIR)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hypertab-bench-", dir=args.dir) as tmp:
        root = Path(tmp).resolve()
        series: dict[str, Any] = {}
        figures = run(bench(args, root, series))
    report.emit(figures, plots(figures, series))


def plots(figures: dict[str, Any], series: dict[str, Any]) -> dict[str, report.Plot]:
    """Ack latency CDFs, acked ops/s over time, and the store against raw SQLite."""
    ops = f"{figures['ops']:,} ops, {figures['producers']} producers"
    return {
        "ack-latency": lambda: report.cdf_plot(
            f"commit: op ack latency per durability level ({ops})",
            {f"store, {level}": ack_ms for level, (ack_ms, _) in series.items()},
            log_x=True,
        ),
        "throughput": lambda: report.series_plot(
            "commit: acked ops/s over time",
            {f"store, {level}": rate for level, (_, rate) in series.items()},
            "acked ops/s",
        ),
        "vs-sqlite": lambda: report.bar_plot(
            "commit: durable ops/s, store against plain sqlite3 (same groups)",
            {
                f"{level} ({figures[level]['synchronous']})": {
                    "TenantStore": figures[level]["store"]["ops_s"],
                    "raw sqlite3 baseline": figures[level]["sqlite_baseline"]["ops_s"],
                }
                for level in series
            },
            "ops/s",
        ),
    }


if __name__ == "__main__":
    main()
