"""Helpers for the backup tests: the real ``hypertab`` CLI in a subprocess, hubs, modes."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any


def hypertab_argv() -> list[str]:
    """The installed console script when present, else ``python -m server.cli``."""
    script = Path(sys.executable).parent / "hypertab"
    return [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]


def clean_env() -> dict[str, str]:
    """This process's environment without any ``HYPERTAB_*`` setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}


def run_process(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``hypertab ARGS --data-dir DATA_DIR`` as its own process (blocking)."""
    return subprocess.run(
        [*hypertab_argv(), *args, "--data-dir", str(data_dir)],
        input="",
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )


async def cli_process(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """:func:`run_process` without blocking the event loop (a hub may be serving in it)."""
    return await asyncio.to_thread(run_process, data_dir, *args)


_CLI_LOCK = threading.Lock()


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``hypertab ARGS --data-dir DATA_DIR`` through the CLI's ``main`` in this process
    (the same parser and handlers as the console script, without its ~1 s start-up), with
    no ``HYPERTAB_*`` variable set, stdout and stderr captured."""
    from server.cli import main

    argv = [*args, "--data-dir", str(data_dir)]
    out, err = io.StringIO(), io.StringIO()
    with _CLI_LOCK:
        saved = {k: v for k, v in os.environ.items() if k.startswith("HYPERTAB_")}
        for name in saved:
            del os.environ[name]
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(argv)
                except SystemExit as exc:  # argparse usage errors
                    code = exc.code if isinstance(exc.code, int) else 2
        finally:
            os.environ.update(saved)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


async def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """:func:`run_cli` in a thread, so a hub serving in this event loop keeps serving."""
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
