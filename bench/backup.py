"""Online backup under write load: how long ``hypertab backup`` takes and what it costs the
writer, and how long ``backup verify`` and ``restore`` take.

How it works
------------
1. An in-process hub (rate limits off) over a temporary data directory; one tenant with one
   table seeded with ``--rows`` rows (insert batches of 500).
2. ``--writers`` SDK tasks insert one row at a time, each waiting for its ack, for
   ``--idle`` seconds: the ack latency baseline.
3. The same writers keep going while ``hypertab backup`` runs as a subprocess on the same
   data directory: the ack latency during the backup, and how many ops were acked meanwhile.
4. ``hypertab backup verify`` and ``hypertab restore`` (into a new directory) are timed.

Prints one JSON line. Figures on a shared machine are noisy.

    .venv/bin/python bench/backup.py [--rows 100000] [--writers 4] [--idle 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from client_sdk import Client
from protocol.ops import InsertRows, NewRow
from server.app import HypertabServer
from server.config import Config
from server.secrets import generate_key_file


def _cli(data_dir: Path, *args: str) -> float:
    script = Path(sys.executable).parent / "hypertab"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    started = time.perf_counter()
    subprocess.run([*argv, *args, "--data-dir", str(data_dir)], check=True, env=env,
                   capture_output=True)  # fmt: skip
    return time.perf_counter() - started


def _ms(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


async def run(rows: int, writers: int, idle: float, root: Path) -> dict[str, Any]:
    data_dir = root / "data"
    data_dir.mkdir(mode=0o700)
    generate_key_file(data_dir / "master.keys")
    server = HypertabServer(Config(data_dir=data_dir, port=0))
    server.admission.enabled = False
    await server.start()
    try:
        _, issued = await server.services.lifecycle.create_tenant("bench", now=time.time())
        url = f"ws://127.0.0.1:{server.port}/v1/ws"
        clients = [await Client.connect(url, api_key=issued.secret) for _ in range(writers)]
        table = await clients[0].create_table("T", [("Name", "text"), ("N", "number")])
        name_id, n_id = table.replica.column_id("Name"), table.replica.column_id("N")
        for start in range(0, rows, 500):
            batch = [
                NewRow(id=f"seed{i}", values={name_id: f"row {i} " + "x" * 40, n_id: i})
                for i in range(start, min(rows, start + 500))
            ]
            await clients[0].apply(table.id, [InsertRows(rows=batch)])

        phase = {"name": "idle"}
        latencies: dict[str, list[float]] = {"idle": [], "backup": [], "after": []}
        stop = asyncio.Event()

        async def write(client: Client, w: int) -> None:
            handle = await client.table(table.id)
            n = 0
            while not stop.is_set():
                started = time.perf_counter()
                await handle.insert({"N": n}, row_id=f"w{w}_{n}")
                latencies[phase["name"]].append(time.perf_counter() - started)
                n += 1

        tasks = [asyncio.create_task(write(c, w)) for w, c in enumerate(clients)]
        await asyncio.sleep(idle)
        phase["name"] = "backup"
        backup_s = await asyncio.to_thread(_cli, data_dir, "backup", str(root / "bk"))
        phase["name"] = "after"
        stop.set()
        await asyncio.gather(*tasks)
        for client in clients:
            await client.close()
    finally:
        await server.stop()
    db_size = _size(data_dir / "tenants")
    verify_s = await asyncio.to_thread(_cli, data_dir, "backup", "verify", str(root / "bk"))
    fresh = root / "fresh"
    fresh.mkdir(mode=0o700)
    for name in ("master.keys", "tenant-keys.json"):
        shutil.copy2(data_dir / name, fresh / name)
    restore_s = await asyncio.to_thread(_cli, fresh, "restore", str(root / "bk"))
    idle_l, during = latencies["idle"], latencies["backup"]
    return {
        "bench": "backup",
        "rows": rows,
        "writers": writers,
        "tenant_db_mb": round(db_size / 2**20, 2),
        "backup_mb": round(_size(root / "bk") / 2**20, 2),
        "backup_s": round(backup_s, 2),
        "verify_s": round(verify_s, 2),
        "restore_s": round(restore_s, 2),
        "acked_per_s_idle": round(len(idle_l) / idle, 1),
        "acked_per_s_during_backup": round(len(during) / backup_s, 1),
        "ack_ms_idle": {"p50": _ms(idle_l, 0.5), "p99": _ms(idle_l, 0.99),
                        "max": round(1000 * max(idle_l, default=0.0), 2)},
        "ack_ms_during_backup": {"p50": _ms(during, 0.5), "p99": _ms(during, 0.99),
                                 "max": round(1000 * max(during, default=0.0), 2)},
        "median_ack_ratio": round(statistics.median(during) / statistics.median(idle_l), 2)
        if during and idle_l else None,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--idle", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run(args.rows, args.writers, args.idle, Path(tmp)))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
