"""``hypertab serve`` processes for the scale-out tests: same data dir, optional Redis."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import psutil
from netutil import PrivateRedis
from websockets.asyncio.client import ClientConnection, connect

from protocol.codec import MSGPACK, codec_for
from protocol.messages import Changes, ServerMessage, Subscribe, Subscribed

START_TIMEOUT = 30.0
T = TypeVar("T")


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


def _log_file(data_dir: Path) -> Path:
    """A fresh file for a server's stderr beside ``data_dir``. A file, not a pipe: nothing
    reads a pipe while the test runs, and a worker that fills one blocks on its next log
    line with its event loop."""
    return data_dir.parent / f"stderr-{data_dir.name}-{time.monotonic_ns()}.log"


class Hub:
    """One ``hypertab serve`` process on ``data_dir``."""

    def __init__(self, data_dir: Path, redis_url: str | None = None) -> None:
        self.data_dir = data_dir
        self.redis_url = redis_url
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process (stderr to a file: :meth:`stderr`); :meth:`wait_listening`
        waits for its port."""
        self._port_file = self.data_dir.parent / f"port-{time.monotonic_ns()}"
        self.log = _log_file(self.data_dir)
        with self.log.open("ab") as log:
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
                stderr=log,
            )
        return self.proc

    def stderr(self) -> str:
        """What the process wrote to stderr so far."""
        return self.log.read_text(errors="replace")

    def wait_listening(self) -> None:
        """Block until the port file appears; RuntimeError with stderr if the process ends."""
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._port_file.exists() and self._port_file.read_text().strip():
                self.port = int(self._port_file.read_text())
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}: {self.stderr()}")
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


class Watcher:
    """A raw subscriber (no SDK: it must see exactly what the hub sends, frame by frame)."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.codec = codec_for(MSGPACK)
        self.versions: list[int] = []
        self.subscribed_at = 0
        self.table = ""

    @classmethod
    async def open(cls, url: str, key: str, table: str) -> Watcher:
        """Connect, subscribe to ``table`` (by name) and wait until live."""
        conn = await connect(
            url,
            additional_headers={"Authorization": f"Bearer {key}"},
            subprotocols=[MSGPACK],  # type: ignore[list-item]
            compression=None,
        )
        watcher = cls(conn)
        await watcher.conn.send(watcher.codec.encode(Subscribe(id=1, name=table)))
        while True:
            message = await watcher.recv()
            if isinstance(message, Subscribed):
                watcher.subscribed_at = message.version
                watcher.table = message.table
                return watcher

    async def recv(self, timeout: float = 10.0) -> ServerMessage:
        data = await asyncio.wait_for(self.conn.recv(decode=False), timeout)
        return self.codec.decode_server(data)

    async def until(self, version: int, timeout: float = 20.0) -> list[int]:
        """Collect change versions until ``version`` was seen; returns all seen so far."""
        async with asyncio.timeout(timeout):
            while not self.versions or self.versions[-1] < version:
                message = await self.recv(timeout)
                if isinstance(message, Changes):
                    self.versions += [c.version for c in message.changes]
        return self.versions

    async def quiet(self, seconds: float = 0.3) -> list[int]:
        """Whatever else arrives within ``seconds`` (duplicates would show up here)."""
        with contextlib.suppress(TimeoutError):
            while True:
                message = await self.recv(seconds)
                if isinstance(message, Changes):
                    self.versions += [c.version for c in message.changes]
        return self.versions

    async def close(self) -> None:
        await self.conn.close()


def private_redis(workdir: Path) -> PrivateRedis:
    """A started :class:`PrivateRedis` (an outage test stops and starts it); skips, or
    fails under CI=true, without the redis-server binary."""
    return PrivateRedis(workdir).start()


def http_get(port: int, path: str) -> tuple[int, str]:
    """The status and body of a plain GET on the hub's port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def http_status(port: int, path: str) -> int:
    """The status of a plain GET on the hub's port."""
    return http_get(port, path)[0]


def metric(port: int, name: str) -> float:
    """One unlabelled sample of ``/metrics`` (read from loopback, which may read it)."""
    status, body = http_get(port, "/metrics")
    assert status == 200
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


class Supervised:
    """``hypertab serve --workers N``: a supervisor and its worker processes on one port."""

    def __init__(
        self, data_dir: Path, redis_url: str, workers: int = 2, env: dict[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.workers = workers
        self.env = {**env_for(redis_url), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> Supervised:
        """Start it and wait until it wrote its port (every worker listens by then)."""
        port_file = self.data_dir.parent / f"port-{time.monotonic_ns()}"
        self.log = _log_file(self.data_dir)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*hypertab_argv(), "serve", "--workers", str(self.workers),
                 "--data-dir", str(self.data_dir), "--port", "0", "--port-file", str(port_file),
                 "--log-level", "WARNING"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if port_file.exists() and port_file.read_text().strip():
                self.port = int(port_file.read_text())
                return self
            if self.proc.poll() is not None:
                err = self.log.read_text(errors="replace")
                raise RuntimeError(f"supervisor exited with {self.proc.returncode}: {err}")
            time.sleep(0.02)
        raise RuntimeError("supervisor did not start")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def worker_pids(self) -> set[int]:
        """The pids of the live worker processes."""
        assert self.proc is not None
        children = psutil.Process(self.proc.pid).children()
        return {c.pid for c in children if c.status() != psutil.STATUS_ZOMBIE}

    def worker_of(self, local_port: int) -> int | None:
        """The pid of the worker holding the connection from our ``local_port``."""
        for pid in self.worker_pids():
            with contextlib.suppress(psutil.Error):
                for c in psutil.Process(pid).net_connections("tcp"):
                    if c.raddr and c.raddr.port == local_port and c.laddr.port == self.port:
                        return pid
        return None

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait; the exit code (SIGKILL everything if it hangs)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the supervisor and its workers (cleanup after a failure)."""
        if self.proc is None:
            return
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.proc.pid).children():
                child.kill()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def supervised_tenant(data_dir: Path, redis_url: str, workers: int = 2) -> Iterator[tuple]:
    """``serve --workers N`` on ``data_dir`` with one tenant, ``acme``: ``(hub, admin key)``;
    everything killed at the end."""
    key = create_tenant(data_dir, "acme")
    hub = Supervised(data_dir, redis_url, workers=workers).start()
    try:
        yield hub, key
    finally:
        hub.kill()


async def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``predicate`` (in a thread: it may read /proc) until true; TimeoutError if not."""
    async with asyncio.timeout(timeout):
        while not await asyncio.to_thread(predicate):
            await asyncio.sleep(0.05)


async def on_each_worker(
    hub: Supervised, open_one: Callable[[], Awaitable[T]], port_of: Callable[[T], int]
) -> dict[int, list[T]]:
    """Open connections until every worker holds at least one (the kernel picks the worker
    that accepts); returns them by worker pid."""
    pids = hub.worker_pids()
    by_worker: dict[int, list[T]] = {pid: [] for pid in pids}
    for _ in range(64):
        conn = await open_one()
        pid = await asyncio.to_thread(hub.worker_of, port_of(conn))
        assert pid is not None, "no worker holds the connection"
        by_worker[pid].append(conn)
        if all(by_worker.values()):
            return by_worker
    raise AssertionError(f"64 connections did not reach every worker: {by_worker}")
