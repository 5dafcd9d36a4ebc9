"""Helpers for the lifecycle tests: the real ``hypertab`` CLI in a subprocess, a second hub."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def hypertab_argv() -> list[str]:
    """The installed console script when present, else ``python -m server.cli``."""
    script = Path(sys.executable).parent / "hypertab"
    return [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without ``HYPERTAB_*``, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    env.update(extra)
    return env


async def cli(
    data_dir: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``hypertab ARGS --data-dir DATA_DIR`` without blocking the event loop."""
    argv = [*hypertab_argv(), *args, "--data-dir", str(data_dir)]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=env if env is not None else clean_env(),
            timeout=60,
            check=False,
        )

    return await asyncio.to_thread(run)


async def cli_json(data_dir: Path, *args: str, stdin: str | None = None) -> Any:
    """Run a ``--json`` command that must succeed; its JSON output."""
    result = await cli(data_dir, *args, "--json", stdin=stdin)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


async def start_hub(data_dir: Path) -> Any:
    """A started hub on a free port over ``data_dir``."""
    from server.app import HypertabServer
    from server.config import Config

    server = HypertabServer(Config(data_dir=data_dir, port=0))
    await server.start()
    return server


def url_of(server: Any) -> str:
    """The WebSocket URL of a started hub."""
    return f"ws://127.0.0.1:{server.port}/v1/ws"
