"""``hypertab serve`` as a separate process on a free port: for crash, restart and delivery
tests in any test directory (``tests/`` is on the import path through ``conftest.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


class ServeProcess:
    """``hypertab serve --port 0`` on ``data_dir``, without the caller's ``HYPERTAB_*``
    settings: rate limits off (these tests load the server, not the plans) plus ``env``."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, timeout: float = 20.0) -> None:
        """Start it and wait until it wrote its port (``RuntimeError`` if it never does)."""
        port_file = self.data_dir.parent / f"port-{time.monotonic_ns()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
        env.update(HYPERTAB_RATE_LIMITS="off", **self.env)
        argv = [sys.executable, "-m", "server.cli", "serve", "--data-dir", str(self.data_dir),
                "--port", "0", "--port-file", str(port_file), "--log-level", "WARNING"]  # fmt: skip
        self.proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_file.exists() and port_file.read_text().strip():
                self.port = int(port_file.read_text())
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            time.sleep(0.02)
        raise RuntimeError("server did not start")

    @property
    def url(self) -> str:
        """Its WebSocket URL."""
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (a graceful stop) and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
