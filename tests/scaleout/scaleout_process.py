"""``hypertab serve`` processes for the scale-out tests: same data dir, optional Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

START_TIMEOUT = 30.0


def hypertab_argv() -> list[str]:
    """The installed console script when present, else ``python -m server.cli``."""
    script = Path(sys.executable).parent / "hypertab"
    return [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]


def env_for(redis_url: str | None) -> dict[str, str]:
    """The test's environment without ``HYPERTAB_*`` settings, plus Redis when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERTAB_")}
    env["HYPERTAB_RATE_LIMITS"] = "off"  # broadcast and write load, not plan limits
    if redis_url is not None:
        env["HYPERTAB_REDIS_URL"] = redis_url
    return env


def create_tenant(data_dir: Path, name: str) -> str:
    """Create a tenant with the real CLI; returns its API key."""
    done = subprocess.run(
        [*hypertab_argv(), "tenant", "create", name, "--json", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=env_for(None),
        timeout=60,
        check=True,
    )
    secret: str = json.loads(done.stdout)["key"]["secret"]
    return secret


class Hub:
    """One ``hypertab serve`` process on ``data_dir``."""

    def __init__(self, data_dir: Path, redis_url: str | None = None) -> None:
        self.data_dir = data_dir
        self.redis_url = redis_url
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process (stderr captured); :meth:`wait_listening` waits for its port."""
        self._port_file = self.data_dir.parent / f"port-{time.monotonic_ns()}"
        self.proc = subprocess.Popen(
            [
                *hypertab_argv(),
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--port",
                "0",
                "--port-file",
                str(self._port_file),
                "--log-level",
                "WARNING",
            ],
            env=env_for(self.redis_url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        return self.proc

    def wait_listening(self) -> None:
        """Block until the port file appears; RuntimeError with stderr if the process ends."""
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._port_file.exists() and self._port_file.read_text().strip():
                self.port = int(self._port_file.read_text())
                return
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"hub exited with {self.proc.returncode}: {err}")
            time.sleep(0.02)
        raise RuntimeError("hub did not start")

    def start(self) -> Hub:
        """Spawn and wait until it listens."""
        self.spawn()
        self.wait_listening()
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL if it hangs)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
