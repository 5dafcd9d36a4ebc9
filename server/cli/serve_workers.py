"""``hypertab serve --workers N`` (N > 1): bind the port, supervise N workers, drain them.

The supervisor prints the URL (and the demo tenant) once, after every worker listens, and
writes ``--port-file`` then; its ``--json`` ``listening`` event adds ``workers`` and their
``pids``. Each worker is ``serve --worker-fd FD`` with every setting passed in its
environment (``HYPERTAB_*``, the file's values included), so workers run exactly the
settings the supervisor validated. How the processes share the work: docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from server.cli.common import EXIT_FAILURE, EXIT_OK, Output
from server.cli.serve import ensure_demo, print_demo, write_port_file, ws_url
from server.config import Config
from server.settings import ENV_CONFIG, Settings
from server.workers import listen
from server.workers.supervisor import Supervisor, WorkerFailed


def worker_command(fd: int) -> list[str]:
    """The command line of one worker, handed listening socket ``fd``."""
    return [sys.executable, "-m", "server.cli", "serve", "--json",
            "--worker-fd", str(fd), "--supervisor-pid", str(os.getpid())]  # fmt: skip


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of every worker: this one with each validated setting written as
    its ``HYPERTAB_*`` variable (so the file is not read again)."""
    env = settings.environ(os.environ)
    env.pop(ENV_CONFIG, None)
    return env


def _error(text: str) -> int:
    print(f"hypertab: error: {text}", file=sys.stderr, flush=True)
    return EXIT_FAILURE


async def supervise(
    settings: Settings, config: Config, *, demo: bool, port_file: Path | None, out: Output
) -> int:
    """Run ``settings.workers`` workers until SIGTERM or SIGINT; the exit code."""
    demo_info = await ensure_demo(config.data_dir) if demo else None
    try:
        listeners = listen.Listeners(config.host, config.port, settings.workers)
    except OSError as exc:
        return _error(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}")
    workers = Supervisor(settings.workers, worker_command, worker_env(settings), listeners)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)

    def on_signal() -> None:
        if stop.is_set():  # a second signal: stop waiting for the graceful path
            workers.kill()
            return
        stop.set()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    try:
        start = asyncio.create_task(workers.start())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([start, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not start.done():  # stopped while the workers were starting
            start.cancel()
            with contextlib.suppress(asyncio.CancelledError, WorkerFailed):
                await start
            await workers.stop()
            return EXIT_OK
        try:
            start.result()
        except WorkerFailed as exc:
            return _error(str(exc))
        port = listeners.port
        url = ws_url(config.host, port, tls=config.tls_cert is not None)
        if port_file is not None:
            write_port_file(port_file, port)
        out.emit(
            "listening",
            f"hypertab listening on {url} ({settings.workers} worker processes)",
            url=url,
            host=config.host,
            port=port,
            tls=config.tls_cert is not None,
            data_dir=str(config.data_dir),
            workers=settings.workers,
            pids=workers.pids,
        )
        if demo_info is not None:
            print_demo(out, *demo_info, url, config)
        await stop.wait()
        drained = await workers.stop()
        if not drained:
            return _error("a worker did not stop cleanly (its error is above)")
        return EXIT_OK
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        listeners.close()
