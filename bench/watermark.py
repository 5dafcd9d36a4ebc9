"""What the relay's watermark round costs: one ``TenantStore.versions()`` read per tenant.

How it works: with Redis, a hub process that follows tables reads every followed tenant's
table versions once per ``WATERMARK_SECONDS`` (server/hub/relay.py), to find a commit
whose broadcast never came. This opens a real tenant store (WAL, its reader thread) with
``--tables`` tables, reads ``--reads`` times the way the round does, and divides the
process's CPU time (``time.process_time()``: the event loop and the reader thread) by the
reads. The best of ``--trials`` phases is reported, because the machine is shared and
other work only ever adds. From that it derives the share of one core the round takes per
tenant and at ``--tenants`` tenants. Prints one JSON line.

    .venv/bin/python bench/watermark.py [--tables 20 --reads 5000 --trials 3 --tenants 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import report
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol.ops import ColumnDef, ColumnType, CreateTable
from server.hub.relay import WATERMARK_SECONDS
from server.store.schema import Durability
from server.store.tenant import TenantStore


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store = await TenantStore.open(
            "t_bench", Path(tmp) / "t.db", durability=Durability.PROCESS,
            on_commit=lambda *_: None,
        )  # fmt: skip
        try:
            column = ColumnDef(id="n", name="N", type=ColumnType.NUMBER)
            for i in range(args.tables):
                create = CreateTable(name=f"T{i}", columns=[column])
                outcome = await store.apply(f"tbl{i}", "bench", f"op{i}", [create], by="bench")
                assert outcome.error is None, outcome.error
            tables = len(await store.versions())
            for _ in range(200):  # warm the reader's statement cache
                await store.versions()
            per_read = []
            for _ in range(args.trials):
                start = time.process_time()
                for _ in range(args.reads):
                    await store.versions()
                per_read.append((time.process_time() - start) / args.reads)
        finally:
            await store.close()
    best = min(per_read)
    share = best / WATERMARK_SECONDS
    return {
        "bench": "watermark",
        "tables": tables,
        "reads": args.reads,
        "cpu_us_per_read": round(best * 1e6, 1),
        "cpu_us_per_read_trials": [round(p * 1e6, 1) for p in per_read],
        "round_seconds": WATERMARK_SECONDS,
        "core_share_per_tenant": round(share, 7),
        "tenants": args.tenants,
        "core_share_at_tenants": round(share * args.tenants, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, default=20)
    parser.add_argument("--reads", type=int, default=5000)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--tenants", type=int, default=1000)
    report.emit(uvloop.run(bench(parser.parse_args())))


if __name__ == "__main__":
    main()
