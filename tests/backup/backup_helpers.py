"""Helpers for the backup tests: the real ``hypertab`` CLI in a subprocess, hubs, modes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any


def hypertab_argv() -> list[str]:
    """The installed console script when present, else ``python -m server.cli``."""
    script = Path(sys.executable).parent / "hypertab"
    return [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]


def clean_env() -> dict[str, str]:
    """This process's environment without any ``HYPERTAB_*`` setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``hypertab ARGS --data-dir DATA_DIR`` (blocking)."""
    return subprocess.run(
        [*hypertab_argv(), *args, "--data-dir", str(data_dir)],
        input="",
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )


async def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """:func:`run_cli` without blocking the event loop (a hub may be serving in it)."""
    return await asyncio.to_thread(run_cli, data_dir, *args)


async def cli_json(data_dir: Path, *args: str) -> Any:
    """Run a ``--json`` command that must succeed; its JSON output."""
    result = await cli(data_dir, *args, "--json")
    assert result.returncode == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def bring_keys(source: Path, target: Path) -> None:
    """What an operator keeps apart and brings to a restore: the master key file and the
    tenant key store (copied with their 0600 mode)."""
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in ("master.keys", "tenant-keys.json"):
        shutil.copy2(source / name, target / name)


async def start_hub(data_dir: Path) -> Any:
    """A started hub on a free port over ``data_dir`` (rate limits off)."""
    from server.app import HypertabServer
    from server.config import Config

    server = HypertabServer(Config(data_dir=data_dir, port=0))
    server.admission.enabled = False
    await server.start()
    return server


def url_of(server: Any) -> str:
    """The WebSocket URL of a started hub."""
    return f"ws://127.0.0.1:{server.port}/v1/ws"


def loose_modes(root: Path) -> list[str]:
    """Files under ``root`` not 0600 and directories not 0700 (``root`` included)."""
    bad = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        want = 0o700 if path.is_dir() else 0o600
        if mode != want:
            bad.append(f"{path.relative_to(root)}: {mode:o}")
    return bad
