"""A fresh clone: the README's commands, pasted as written, work in order.

The checkout is a new directory whose ``.venv`` is this test run's virtualenv, as ``make``
would have made it. ``.venv/bin/hypertab serve --demo`` runs there (what ``make serve``
runs); then every line of the README's ``sh`` blocks runs from that directory, and every
``python`` block runs twice (examples must survive being run again) with the demo key.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ops_helpers import clean_env

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
VENV = Path(sys.prefix)


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks in ``language``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.M | re.S)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A checkout directory with the test run's virtualenv as its ``.venv``."""
    directory = tmp_path / "hypertab"
    directory.mkdir()
    (directory / ".venv").symlink_to(VENV, target_is_directory=True)
    return directory


@pytest.fixture
def served(clone: Path) -> Iterator[dict[str, Any]]:
    """``.venv/bin/hypertab serve --demo`` in the clone; its demo line as JSON."""
    with subprocess.Popen(
        [".venv/bin/hypertab", "serve", "--demo", "--json", "--port", "0"],
        cwd=clone, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:  # fmt: skip
        try:
            assert proc.stdout is not None
            listening = json.loads(proc.stdout.readline())
            demo = json.loads(proc.stdout.readline())
            yield {**demo, "url": listening["url"]}
        finally:
            proc.terminate()
            proc.wait(30)


def test_the_readme_cli_lines_run_from_the_checkout(clone: Path, served: dict[str, Any]) -> None:
    lines = [
        line
        for block in blocks("sh")
        for line in block.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert any(line.startswith(".venv/bin/hypertab ") for line in lines)
    for line in lines:
        result = subprocess.run(
            shlex.split(line), cwd=clone, env=clean_env(), capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, (line, result.stderr)


def test_the_readme_python_runs_twice_against_serve_demo(
    clone: Path, served: dict[str, Any]
) -> None:
    examples = blocks("python")
    assert examples
    key, url = served["key"], served["url"]
    env = clean_env(HYPERTAB_API_KEY=key)
    for example in examples:
        code = example.replace("ws://127.0.0.1:8765/v1/ws", url).replace("ht_live_…", key)
        for _ in range(2):
            result = subprocess.run(
                [".venv/bin/python", "-c", code], cwd=clone, env=env, capture_output=True,
                text=True, timeout=60, check=False,
            )  # fmt: skip
            assert result.returncode == 0, (example, result.stderr)


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_serve_takes_port_and_host() -> None:
    result = subprocess.run(
        ["make", "-n", "serve", "PORT=9123", "HOST=0.0.0.0"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "MAKEFLAGS": ""},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "hypertab serve --demo --data-dir data --host 0.0.0.0 --port 9123" in result.stdout
