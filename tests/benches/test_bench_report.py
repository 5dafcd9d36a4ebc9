"""`make bench` and bench/report.py: which files run, and what a bench leaves behind.

A bench's JSON line on stdout is the one machine-readable output (scripts parse it); the
PNGs and the JSON copy go to the out folder; progress never reaches stdout; a plot that
fails costs only that plot.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _make_list(name: str) -> set[str]:
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    match = re.search(rf"^{name}\s*:=(.*)$", text, re.MULTILINE)
    assert match, f"{name} not in the Makefile"
    return set(match.group(1).split())


def test_make_bench_runs_every_bench_and_skips_the_helpers() -> None:
    benches, helpers = _make_list("BENCHES"), _make_list("BENCH_HELPERS")
    files = {p.stem for p in BENCH.glob("*.py")}
    assert not benches & helpers
    # A new bench/*.py must be put in one list: a bench `make bench` silently skipped, or a
    # helper it runs as a bench (relay_server.py used to abort `make bench`), fails here.
    assert files == benches | helpers, sorted(files ^ (benches | helpers))


def test_relay_helper_without_arguments_prints_usage() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "relay_server.py")], capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "usage:" in done.stderr and "Traceback" not in done.stderr


SCRIPT = """
import sys
sys.path.insert(0, {bench!r})
import report

with report.progress(3, "work") as bar:
    for _ in range(3):
        bar.update()

def broken():
    raise RuntimeError("no data")

report.emit(
    {{"bench": "demo", "ops_s": 123, "quick": report.quick()}},
    {{
        "latency": lambda: report.cdf_plot("demo", {{"a": [1.0, 2.0, 3.0]}}, log_x=True),
        "rate": lambda: report.series_plot(
            "demo", {{"a": report.rate_over_time([0.1, 0.2, 0.6, 0.9], 0.0)}}, "ops/s"
        ),
        "broken": broken,
        "bars": lambda: report.bar_plot("demo", {{"case": {{"hub": 2.0, "relay": 1.0}}}}, "ms"),
    }},
)
"""


def test_emit_prints_one_json_line_and_writes_plots_beside_it(tmp_path: Path) -> None:
    script = tmp_path / "demo.py"
    script.write_text(textwrap.dedent(SCRIPT.format(bench=str(BENCH))))
    out = tmp_path / "out"
    env = {**os.environ, "HYPERTAB_BENCH_OUT": str(out), "HYPERTAB_BENCH_QUICK": "1"}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    figures = json.loads(lines[0])
    assert figures == {"bench": "demo", "ops_s": 123, "quick": True}
    assert json.loads((out / "demo.json").read_text()) == figures
    for name in ("latency", "rate", "bars"):
        png = (out / f"demo-{name}.png").read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) < 100_000
    # The failing plot is named on stderr; nothing was written for it.
    assert not (out / "demo-broken.png").exists()
    assert "demo-broken.png" in done.stderr and "no data" in done.stderr
    # stderr is not a terminal here: no progress bar (no carriage returns in logs).
    assert "\r" not in done.stderr and "work" not in done.stderr
