"""Ports and private Redis servers for the tests (one copy for every test package).

``PrivateRedis`` is a redis-server of one test's (or one session's) own on a free port,
which a test may stop and start again: a Redis outage. Without the binary the test is
skipped on a developer machine and fails under CI (``CI=true``), where Redis is required.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float) -> None:
    """Until something accepts on 127.0.0.1:``port``; ``RuntimeError`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def skip_or_fail(message: str) -> None:
    """Skip the test, or fail it under CI, where every requirement is there."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class PrivateRedis:
    """A redis-server on a free port of 127.0.0.1, keeping nothing on disk."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            skip_or_fail("Redis needed: no redis-server binary")
        assert binary is not None
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        """Start it (again, after :meth:`stop`: same port) and wait until it accepts."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_port(self.port, 10.0)
        except RuntimeError:
            self.stop()
            raise RuntimeError("redis-server did not start") from None
        return self

    def stop(self) -> None:
        """Stop it (idempotent)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None
