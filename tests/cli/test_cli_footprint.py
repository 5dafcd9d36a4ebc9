"""``hypertab serve`` with the embedded default loads only what it uses.

Redis (only with ``HYPERTAB_REDIS_URL``), pyjwt and cryptography (only for JWTs, secrets and
deletion certificates), httpx (only when a webhook or alert is posted) and the MCP server's
stack (only ``hypertab mcp``) were ~45 MiB of an idle server's RSS. This runs the real server
under ``python -X importtime``, serves one authenticated session, and reads which packages
it imported.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from cli_helpers import Run, cli_env
from websockets.asyncio.client import connect

from protocol.codec import MSGPACK

TIMEOUT = 30.0
NOT_AT_START = {
    *("redis", "jwt", "cryptography", "httpx", "mcp", "pydantic", "starlette", "uvicorn"),
    "prometheus_client",  # at the first /metrics scrape
    "tarfile",  # tenant export and import only
    "ctypes",  # a worker of serve --workers only (PR_SET_PDEATHSIG)
}
NOT_AT_START_MODULES = {  # the formula engine's compiler and library: at the first formula
    "server.formula.compiler",
    "server.formula.custom",
    "server.formula.functions",
}


def imported_modules(importtime_log: str) -> set[str]:
    """Module names from ``-X importtime`` lines (``import time: a | b | name``)."""
    names = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def imported_packages(importtime_log: str) -> set[str]:
    """Top-level package names of :func:`imported_modules`."""
    return {name.split(".")[0] for name in imported_modules(importtime_log)}


async def test_serve_imports_no_redis_jwt_crypto_or_mcp(
    data_dir: Path, hypertab: Run, tmp_path: Path
) -> None:
    created = hypertab("tenant", "create", "acme", "--json")
    key = json.loads(created.stdout)["key"]["secret"]
    log = tmp_path / "importtime.txt"
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-X", "importtime", "-m", "server.cli", "serve",
            "--port", "0", "--data-dir", str(data_dir),
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            env=cli_env(),
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)).decode()
            url = line.rsplit(" ", 1)[1].strip()
            async with connect(
                url,
                additional_headers={"Authorization": f"Bearer {key}"},
                subprotocols=[MSGPACK],  # type: ignore[list-item]
                compression=None,
                open_timeout=TIMEOUT,
            ) as ws:
                await asyncio.wait_for(ws.recv(), TIMEOUT)  # welcome: the session is open
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    packages = imported_packages(log.read_text())
    assert "server" in packages and "websockets" in packages  # the log is the real one
    assert packages.isdisjoint(NOT_AT_START), sorted(packages & NOT_AT_START)
    modules = imported_modules(log.read_text())
    assert "server.formula.tokenizer" in modules  # the light parts are loaded, as they should
    assert modules.isdisjoint(NOT_AT_START_MODULES), sorted(modules & NOT_AT_START_MODULES)
