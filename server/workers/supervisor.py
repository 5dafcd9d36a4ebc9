"""The supervisor: starts N worker processes, restarts those that die, drains them all.

A worker is ready when it prints its ``listening`` line (``serve --json`` on its stdout,
a pipe to the supervisor); its log lines go straight to the supervisor's stderr. Workers
run in sessions of their own, so a terminal's Ctrl-C reaches only the supervisor, which
passes it on as SIGTERM: one orderly drain rather than two signals racing in each worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from server.workers.backoff import RestartBackoff
from server.workers.listen import Listeners

log = logging.getLogger(__name__)

READY_TIMEOUT = 60.0
"""Seconds a worker may take to listen (open control.db, reach Redis) before it is killed."""
DRAIN_TIMEOUT = 60.0
"""Seconds the workers get to stop gracefully after SIGTERM before they are killed."""


class WorkerFailed(Exception):
    """A worker exited before it was listening (its own error line is on stderr)."""

    def __init__(self, index: int, returncode: int | None) -> None:
        super().__init__(
            f"worker {index} exited with code {returncode} before it was listening "
            "(its error is above)"
        )
        self.index = index
        self.returncode = returncode


@dataclass
class Worker:
    """One worker slot: the process currently in it, and the restarts of the slot."""

    index: int
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    restarts: int = 0
    backoff: RestartBackoff = field(default_factory=RestartBackoff)
    drain: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid


class Supervisor:
    """Runs ``count`` workers until :meth:`stop`: each is ``command(fd)``, handed its slot's
    listening socket ``fd`` from ``listeners``."""

    def __init__(
        self,
        count: int,
        command: Callable[[int], Sequence[str]],
        env: dict[str, str],
        listeners: Listeners,
    ) -> None:
        self.command = command
        self.env = env
        self.listeners = listeners
        self.workers = [Worker(index) for index in range(1, count + 1)]
        self.stopping = asyncio.Event()
        self._watchers: list[asyncio.Task[None]] = []

    @property
    def pids(self) -> list[int]:
        """The pids of the workers running now."""
        return [w.pid for w in self.workers if w.pid is not None and w.proc is not None
                and w.proc.returncode is None]  # fmt: skip

    async def start(self) -> None:
        """Start every worker and wait until each listens; :class:`WorkerFailed` (after
        stopping the others) when one exits first."""
        try:
            await asyncio.gather(*(self._spawn(w) for w in self.workers))
        except BaseException:
            await self.stop()
            raise
        self._watchers = [
            asyncio.create_task(self._watch(w), name=f"worker {w.index}") for w in self.workers
        ]

    async def _spawn(self, worker: Worker) -> None:
        fd = self.listeners.open(worker.index)
        proc = await asyncio.create_subprocess_exec(
            *self.command(fd),
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            pass_fds=(fd,),
            start_new_session=True,
        )
        worker.proc, worker.started = proc, time.monotonic()
        assert proc.stdout is not None
        ready = False
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                while not ready and (line := await proc.stdout.readline()):
                    ready = _is_listening(line)
        except TimeoutError:
            log.warning("worker %d (pid %d) did not listen within %.0f s; killing it",
                        worker.index, proc.pid, READY_TIMEOUT)  # fmt: skip
        if not ready:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            code = await proc.wait()
            self.listeners.release(worker.index)
            raise WorkerFailed(worker.index, code)
        worker.drain = asyncio.create_task(_discard(proc.stdout), name="worker stdout")

    async def _watch(self, worker: Worker) -> None:
        """Restart ``worker`` whenever it dies, until the supervisor stops."""
        while not self.stopping.is_set():
            assert worker.proc is not None
            code = await worker.proc.wait()
            if self.stopping.is_set():
                return
            self.listeners.release(worker.index)  # its share goes to the others meanwhile
            delay = worker.backoff.delay(worker.started, time.monotonic())
            log.warning(
                "worker %d (pid %d) exited with code %d; starting another in %.1f s",
                worker.index, worker.proc.pid, code, delay,
            )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set():
                return
            try:
                await self._spawn(worker)
            except OSError as exc:  # its socket could not be bound again: a quick death
                worker.started = time.monotonic()
                log.warning("restarting worker %d failed: cannot listen (%s)",
                            worker.index, exc.strerror or exc)  # fmt: skip
                continue
            except WorkerFailed as exc:
                log.warning("restarting worker %d failed: %s", worker.index, exc)
                continue  # its process is gone: wait() returns at once, backoff grows
            worker.restarts += 1
            log.warning("worker %d restarted (pid %d)", worker.index, worker.pid)

    async def stop(self, *, force: bool = False) -> bool:
        """SIGTERM every worker (SIGKILL with ``force``, or past :data:`DRAIN_TIMEOUT`) and
        wait for them; ``True`` when every one exited 0."""
        self.stopping.set()
        for task in self._watchers:
            task.cancel()
        live = [w.proc for w in self.workers if w.proc is not None and w.proc.returncode is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL if force else signal.SIGTERM)
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT):
                codes = await asyncio.gather(*(p.wait() for p in live))
        except TimeoutError:
            log.warning("workers did not stop within %.0f s; killing them", DRAIN_TIMEOUT)
            for proc in live:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            codes = await asyncio.gather(*(p.wait() for p in live))
        for worker in self.workers:
            if worker.drain is not None:
                worker.drain.cancel()
        return all(code == 0 for code in codes)

    def kill(self) -> None:
        """SIGKILL every worker now (a second Ctrl-C: stop waiting for the graceful path)."""
        for worker in self.workers:
            if worker.proc is not None and worker.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.kill()


def _is_listening(line: bytes) -> bool:
    with contextlib.suppress(ValueError):
        event = json.loads(line)
        return isinstance(event, dict) and event.get("event") == "listening"
    return False


async def _discard(stream: asyncio.StreamReader) -> None:
    """Read a worker's stdout to its end, so that its pipe never fills."""
    while await stream.read(1 << 16):
        pass
