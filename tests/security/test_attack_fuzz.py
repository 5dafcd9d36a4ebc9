"""The short fuzz run of ``make test`` (docs/security.md, FR-12): a few thousand mutated
frames, JSON and msgpack, through the decoder and the session rules (``bench/fuzz.py``, the
same coverage-guided fuzzer as the 1,000,000-input run in bench/RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FUZZ = Path(__file__).resolve().parents[2] / "bench" / "fuzz.py"
INPUTS = 4000


def test_fr12_fuzzed_frames_get_only_documented_errors(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(FUZZ), f"--count={INPUTS}", "--seed=12"],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=tmp_path,  # libFuzzer writes nothing outside its own temporary directory
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout[-2000:]  # one JSON line, like every bench script
    figures = json.loads(lines[0])
    assert figures["inputs"] == INPUTS
    assert figures["crashes"] == 0, figures["crash_artifacts"]
    assert figures["unhandled_exceptions"] == 0, figures["examples"]
    # the run reached both the decoder's refusals and the rules behind it
    assert figures["decode_errors"] > 0 and figures["decoded"] > 0
    assert figures["refused"] > 0 and figures["planned"] + figures["batch_errors"] > 0
    assert figures["rss_end_mb"] > 0
    assert list(tmp_path.iterdir()) == []
