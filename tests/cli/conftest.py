"""Fixtures: a temporary data dir and the real ``hypertab`` command run against it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cli_helpers import Run, cli_env, hypertab_command


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty data directory."""
    return tmp_path / "data"


@pytest.fixture
def hypertab(data_dir: Path) -> Run:
    """``hypertab(*args)``: run the CLI with ``--data-dir`` appended; never raises on exit."""

    def run(
        *args: str, env: dict[str, str] | None = None, data: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [*hypertab_command(), *args]
        if data:
            argv += ["--data-dir", str(data_dir)]
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=env if env is not None else cli_env(),
            timeout=60,
            check=False,
        )

    return run
