"""The spreadsheet page in Chromium: time to a drawn grid, and edit-to-screen latency.

A real ``hypertab serve`` runs in its own process (enterprise tenant made with the CLI);
Debian's Chromium is driven by Playwright. Two figures:

- **navigation → grid**: from the start of navigation to ``/t/<id>`` until the grid has
  drawn the whole table and it is live (``performance.mark("hypertab-grid-complete")`` in
  ``grid.mjs``; marks are timed from the navigation's time origin), for tables of 10,000
  and 100,000 rows (4 columns), median of ``--loads`` fresh page loads each. It covers the
  HTTP fetches, the WebSocket handshake, the whole chunked snapshot, the replica and the
  frame. ``first_rows_ms``: until the first rows are on screen (``hypertab-grid-drawn``:
  a first load draws rows as the snapshot streams in).
- **scroll redraw**: after the last load, the body jumps to a random place in the table on
  each of 200 animation frames; each redraw of the grid (``Grid._draw``: the rows in view
  refilled) is timed. Under ~16 ms per redraw, scrolling keeps 60 frames a second.
- **edit in page A → visible in page B**: page A sets a cell through the JavaScript
  client (``table.update``), page B holds a ``MutationObserver`` on its grid and notes when
  that cell's text changes; both clocks are ``performance.timeOrigin + performance.now()``
  of one browser. ``--edits`` edits, one at a time, spaced ``--gap-ms`` apart (a person's
  pace, and within the per-connection burst limit the client paces itself to).

Prints one JSON line.

    python bench/browser.py [--rows 10000,100000 --loads 3 --edits 500 --gap-ms 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright

from client_sdk import Client
from protocol.ops import InsertRows, NewRow

ROOT = Path(__file__).resolve().parent.parent
HYPERTAB = str(Path(sys.executable).with_name("hypertab"))
CHROMIUM = os.environ.get("HYPERTAB_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def start_server(data: Path) -> tuple[subprocess.Popen[bytes], int, str]:
    made = subprocess.run(
        [
            HYPERTAB,
            "tenant",
            "create",
            "bench",
            "--plan",
            "enterprise",
            "--data-dir",
            str(data),
            "--json",
        ],
        check=True,
        capture_output=True,
    )
    key = json.loads(made.stdout)["key"]["secret"]
    port_file = data / "port"
    proc = subprocess.Popen(
        [
            HYPERTAB,
            "serve",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--data-dir",
            str(data),
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not port_file.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("hypertab serve did not start")
        time.sleep(0.05)
    return proc, int(port_file.read_text()), key


async def fill(url: str, key: str, rows: int) -> str:
    async with await Client.connect(url, api_key=key) as sdk:
        table = await sdk.create_table(
            f"Bench {rows}",
            [("N", "number"), ("Name", "text"), ("Price", "number"), ("Ok", "boolean")],
        )
        for start in range(0, rows, 1000):
            batch = [
                NewRow(values={"N": i, "Name": f"item {i}", "Price": i * 0.25, "Ok": i % 2 == 0})
                for i in range(start, min(rows, start + 1000))
            ]
            await sdk.apply(table.id, [InsertRows(rows=batch)])
        return table.id


async def open_grid(context: Any, base: str, table: str, key: str) -> tuple[Any, float, float]:
    """A page on the table; ms from navigation to the first rows drawn, and to the whole
    table drawn and live."""
    page = await context.new_page()
    await page.goto(f"{base}/t/{table}#key={key}")
    await page.wait_for_function(
        "() => performance.getEntriesByName('hypertab-grid-complete').length > 0",
        timeout=120_000,
    )
    first, complete = await page.evaluate(
        """() => ['hypertab-grid-drawn', 'hypertab-grid-complete'].map(
            (name) => performance.getEntriesByName(name)[0].startTime)"""
    )
    return page, float(first), float(complete)


SCROLL = """(frames) => new Promise((resolve) => {
    // Jump through the table for `frames` animation frames; time the grid's redraws.
    const body = document.getElementById("grid-body");
    const grid = window.hypertab.grid;
    const draw = grid._draw.bind(grid);
    const costs = [];
    grid._draw = () => { const t = performance.now(); draw(); costs.push(performance.now() - t); };
    let n = 0;
    const step = () => {
        body.scrollTop = Math.random() * (body.scrollHeight - body.clientHeight);
        if (++n < frames) requestAnimationFrame(step);
        else requestAnimationFrame(() => { grid._draw = draw; resolve(costs); });
    };
    requestAnimationFrame(step);
})"""


async def load_times(
    browser: Any, base: str, table: str, key: str, loads: int
) -> tuple[list[float], list[float], list[float]]:
    """Navigation -> whole grid and -> first rows for each load, and the redraw costs of the
    last load's scroll."""
    times: list[float] = []
    firsts: list[float] = []
    draws: list[float] = []
    for _ in range(loads):
        context = await browser.new_context()
        page, first, complete = await open_grid(context, base, table, key)
        times.append(complete)
        firsts.append(first)
        draws = await page.evaluate(SCROLL, 200)
        await context.close()
    return times, firsts, draws


WATCH = """(text) => new Promise((resolve) => {
    const grid = document.getElementById("grid-rows");
    const cell = () => grid.querySelector('.row[data-row="0"] .cell[data-col="1"]');
    const check = () => {
        if (cell() && cell().textContent === text) {
            observer.disconnect();
            resolve(performance.timeOrigin + performance.now());
            return true;
        }
        return false;
    };
    const observer = new MutationObserver(check);
    observer.observe(grid, {subtree: true, childList: true, characterData: true});
    check();
})"""

EDIT = """(text) => {
    const t = window.hypertab.table;
    const row = t.rows()[0].id;
    const at = performance.timeOrigin + performance.now();
    t.update(row, {Name: text});
    return at;
}"""


async def edit_latencies(
    browser: Any, base: str, table: str, key: str, edits: int, gap: float
) -> list[float]:
    a_ctx, b_ctx = await browser.new_context(), await browser.new_context()
    a, _, _ = await open_grid(a_ctx, base, table, key)
    b, _, _ = await open_grid(b_ctx, base, table, key)
    latencies = []
    for i in range(edits):
        text = f"edit {i}"
        seen = asyncio.ensure_future(b.evaluate(WATCH, text))
        await asyncio.sleep(0.005)  # the observer is installed before the edit leaves A
        sent = await a.evaluate(EDIT, text)
        shown = await seen
        latencies.append(shown - sent)
        await asyncio.sleep(gap)
    await a_ctx.close()
    await b_ctx.close()
    return latencies


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="10000,100000")
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--edits", type=int, default=500)
    parser.add_argument("--gap-ms", type=float, default=60.0)
    args = parser.parse_args()
    sizes = [int(n) for n in args.rows.split(",") if n]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        proc, port, key = start_server(data)
        try:
            url, base = f"ws://127.0.0.1:{port}/v1/ws", f"http://127.0.0.1:{port}"
            tables = {n: await fill(url, key, n) for n in sizes}
            small = await fill(url, key, 20)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                result: dict[str, Any] = {"bench": "browser", "chromium": browser.version}
                for n, table in tables.items():
                    times, firsts, draws = await load_times(browser, base, table, key, args.loads)
                    result[f"grid_ms_{n}_rows"] = round(statistics.median(times), 1)
                    result[f"grid_ms_{n}_rows_all"] = [round(t, 1) for t in times]
                    result[f"first_rows_ms_{n}_rows"] = round(statistics.median(firsts), 1)
                    result[f"scroll_redraw_p50_ms_{n}_rows"] = round(pct(draws, 50), 2)
                    result[f"scroll_redraw_p99_ms_{n}_rows"] = round(pct(draws, 99), 2)
                lat = await edit_latencies(
                    browser, base, small, key, args.edits, args.gap_ms / 1000
                )
                result.update(
                    edits=len(lat),
                    edit_to_screen_p50_ms=round(pct(lat, 50), 2),
                    edit_to_screen_p99_ms=round(pct(lat, 99), 2),
                    edit_to_screen_max_ms=round(max(lat), 2),
                )
                await browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
