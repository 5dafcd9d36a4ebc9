"""Helpers of the ``test_identity_*`` security tests: a Redis of their own, raw sockets,
the CLI in a subprocess, waiting without sleeps.

(Named apart from ``tests/identity/identity_helpers.py``: test directories have no
``__init__.py``, so two helper modules of one name would shadow each other.)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from attack_helpers import bearer
from websockets.asyncio.client import ClientConnection, connect

from protocol.codec import MSGPACK, codec_for
from protocol.messages import Welcome

MP = codec_for(MSGPACK)


async def open_raw(url: str, token: str) -> tuple[ClientConnection, Welcome]:
    """An accepted msgpack connection for ``token`` and its welcome."""
    conn = await connect(
        url,
        additional_headers=bearer(token),
        subprotocols=[MSGPACK],  # type: ignore[list-item]
        compression=None,
        open_timeout=20,
    )
    welcome = MP.decode_server(await conn.recv(decode=False))
    assert isinstance(welcome, Welcome)
    return conn, welcome


def key_id(key: str) -> str:
    """The public id part of an API key."""
    return key.split("_")[2]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``hypertab ARGS`` in another process (no inherited ``HYPERTAB_*`` settings)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    script = Path(sys.executable).parent / "hypertab"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """A redis-server of one test's own, which the test may stop (an outage)."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "Redis needed: no redis-server binary"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        workdir.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(workdir)]
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None


@contextmanager
def private_redis(workdir: Path) -> Iterator[PrivateRedis]:
    """A :class:`PrivateRedis`, always stopped at the end."""
    redis = PrivateRedis(workdir)
    try:
        yield redis
    finally:
        redis.stop()


def mode(path: Path) -> int:
    """The permission bits of ``path``."""
    return path.stat().st_mode & 0o777
