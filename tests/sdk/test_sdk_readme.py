"""The README's Python examples, run as plain scripts against a real hub, twice each."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

from client_sdk import Client

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
EXAMPLES = re.findall(r"```python\n(.*?)```", README, re.S)
ROOT = Path(__file__).resolve().parents[2]


async def _run(code: str, hub_url: str, key: str, tmp_path: Path) -> str:
    script = tmp_path / "example.py"
    script.write_text(code.replace("ws://127.0.0.1:8765/v1/ws", hub_url))
    env = {**os.environ, "HYPERTAB_API_KEY": key, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_the_sync_example_runs_twice_in_a_plain_script(
    hub_url: str, tenant: Any, tmp_path: Path
) -> None:
    _, key = tenant
    sync_example = EXAMPLES[0]
    assert "SyncClient" in sync_example and "asyncio" not in sync_example
    first = await _run(sync_example, hub_url, key, tmp_path)
    second = await _run(sync_example, hub_url, key, tmp_path)
    assert first.count("'Age': 37") == 1
    assert second.count("'Age': 37") == 2  # the second run follows the same table
    async with await Client.connect(hub_url, api_key=key) as client:
        tables = await client.list_tables()
        assert [t.name for t in tables] == ["People"]
        people = await client.table("People")
        assert [dict(r) for r in people.records()] == [{"Name": "Ada", "Age": 37}] * 2


async def test_the_async_example_runs_twice(hub_url: str, tenant: Any, tmp_path: Path) -> None:
    _, key = tenant
    async_example = EXAMPLES[1]
    assert "Client.connect" in async_example
    for _ in range(2):
        out = await _run(async_example, hub_url, key, tmp_path)
        assert out.splitlines()[-1] == "inserted {'Name': 'Grace', 'Age': 85}"
