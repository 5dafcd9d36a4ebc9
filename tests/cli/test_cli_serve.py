"""``hypertab serve`` as a process: listening line, real handshakes, SIGTERM, ``--demo``."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cli_helpers import KEY_RE, Run, cli_env, hypertab_command
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from protocol.codec import MSGPACK, codec_for
from protocol.messages import Welcome

START_TIMEOUT = 30.0


class Served:
    """A running ``hypertab serve`` process and what it printed first."""

    def __init__(self, proc: asyncio.subprocess.Process, lines: list[str]) -> None:
        self.proc = proc
        self.lines = lines

    @property
    def url(self) -> str:
        prefix = "hypertab listening on "
        assert self.lines[0].startswith(prefix), self.lines
        return self.lines[0][len(prefix) :]

    async def read_line(self) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), START_TIMEOUT)
        line = raw.decode().rstrip("\n")
        self.lines.append(line)
        return line

    async def terminate(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), START_TIMEOUT)


async def start(data_dir: Path, *args: str) -> Served:
    proc = await asyncio.create_subprocess_exec(
        *hypertab_command(), "serve", "--port", "0", "--data-dir", str(data_dir), *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=cli_env(),
    )  # fmt: skip
    served = Served(proc, [])
    await served.read_line()
    return served


@pytest.fixture
async def running(data_dir: Path, hypertab: Run) -> AsyncIterator[tuple[Served, str]]:
    """A server over a data dir holding one tenant; yields it and the tenant's key."""
    created = hypertab("tenant", "create", "acme", "--json")
    key = json.loads(created.stdout)["key"]["secret"]
    served = await start(data_dir)
    try:
        yield served, key
    finally:
        if served.proc.returncode is None:
            served.proc.kill()
            await served.proc.wait()


async def test_serve_accepts_key_refuses_bad_key_and_stops_on_sigterm(
    running: tuple[Served, str],
) -> None:
    served, key = running
    assert served.url.startswith("ws://127.0.0.1:") and served.url.endswith("/v1/ws")

    async with connect(
        served.url,
        additional_headers={"Authorization": f"Bearer {key}"},
        subprotocols=[MSGPACK],  # type: ignore[list-item]
        compression=None,
        open_timeout=START_TIMEOUT,
    ) as ws:
        assert ws.subprotocol == MSGPACK
        frame = await asyncio.wait_for(ws.recv(), START_TIMEOUT)
        welcome = codec_for(MSGPACK).decode_server(frame)
        assert isinstance(welcome, Welcome)
        assert welcome.tenant and "tables:write" in welcome.scopes

    bad = key[:-8] + ("A" if key[-8] != "A" else "B") + key[-7:]
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            served.url,
            additional_headers={"Authorization": f"Bearer {bad}"},
            subprotocols=[MSGPACK],  # type: ignore[list-item]
            open_timeout=START_TIMEOUT,
        ):
            pass
    assert refused.value.response.status_code == 401

    assert await served.terminate() == 0


async def test_serve_writes_the_bound_port_to_port_file(tmp_path: Path, data_dir: Path) -> None:
    port_file = tmp_path / "port"
    served = await start(data_dir, "--port-file", str(port_file))
    try:
        assert served.url.endswith(f":{int(port_file.read_text())}/v1/ws")
    finally:
        assert await served.terminate() == 0


async def test_demo_key_is_shown_on_first_run_only(data_dir: Path, hypertab: Run) -> None:
    first = await start(data_dir, "--demo")
    try:
        shown = [await first.read_line() for _ in range(3)]
        assert "plan enterprise: 50000 ops/min" in shown[0]
        (key,) = KEY_RE.findall("\n".join(shown))
        link = await first.read_line()
        # The page link carries the key in the fragment, which browsers never send.
        page = "http" + first.url.removeprefix("ws").removesuffix("v1/ws")
        assert link.strip() == f"open in a browser: {page}#key={key}"
        async with connect(first.url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
            await asyncio.wait_for(ws.recv(), START_TIMEOUT)
    finally:
        assert await first.terminate() == 0

    second = await start(data_dir, "--demo")
    try:
        notice = await second.read_line()
        assert "demo tenant" in notice and "exists" in notice
        assert not KEY_RE.search(notice)
    finally:
        assert await second.terminate() == 0
    listed = json.loads(hypertab("tenant", "list", "--json").stdout)
    assert [t["name"] for t in listed["tenants"]] == ["demo"]


async def test_serve_json_startup_lines_and_the_suggested_key_can_write_schema(
    data_dir: Path, hypertab: Run
) -> None:
    hypertab("tenant", "create", "demo")  # a demo tenant whose first key is long gone
    proc = await asyncio.create_subprocess_exec(
        *hypertab_command(), "serve", "--demo", "--json", "--port", "0",
        "--data-dir", str(data_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=cli_env(),
    )  # fmt: skip
    served = Served(proc, [])
    try:
        listening = json.loads(await served.read_line())
        demo = json.loads(await served.read_line())
    finally:
        assert await served.terminate() == 0
    assert listening["event"] == "listening" and listening["tls"] is False
    assert listening["url"] == f"ws://127.0.0.1:{listening['port']}/v1/ws"
    assert demo["event"] == "demo" and demo["key"] is None
    assert demo["limits"]["ops_per_minute"] > 0
    command = demo["new_key_command"].split()
    assert command[0].endswith("hypertab")
    created = hypertab(*command[1:], "--json", data=False)
    assert created.returncode == 0, created.stderr
    assert "schema:write" in json.loads(created.stdout)["key"]["scopes"]


def test_serve_on_a_busy_port_fails_with_one_line(hypertab: Run) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = hypertab("serve", "--port", str(port))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
