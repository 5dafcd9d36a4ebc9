"""One thread owning one ``sqlite3`` connection: functions run on it, in order, one hop each.

A tenant's writer and its read connection are each one of these. ``call(fn, *args)`` queues
``fn(connection, *args)`` for the thread and returns an asyncio future resolved on the
event loop with its result. A whole group commit or a whole consistent read is one
function, so it costs one round trip between the loop and the thread, not one per
statement (aiosqlite, which the control plane and the CLI use, offers a hop per statement
only: a function of our own can be run in its thread through its private API alone).

The connection never leaves the thread: it is opened there, used only by the functions
queued, and closed there.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from queue import SimpleQueue
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any], asyncio.AbstractEventLoop]


class ThreadClosed(RuntimeError):
    """The connection's thread is closed or closing."""


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _reject(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


class SqliteThread:
    """A ``sqlite3`` connection in a thread of its own. Create with :meth:`open`."""

    def __init__(self, name: str) -> None:
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._conn: sqlite3.Connection | None = None
        self._closing = False
        # A daemon: a store nobody closed must not keep the process alive at exit (an
        # interrupted transaction is rolled back by SQLite; nothing was acked for it).
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)

    @classmethod
    async def open(cls, path: Path, name: str) -> SqliteThread:
        """Start the thread and open ``path`` in it (autocommit mode: ``BEGIN`` explicitly)."""
        worker = cls(name)
        worker._thread.start()
        try:
            await worker.call(worker._connect, path)
        except BaseException:
            await worker.close()
            raise
        return worker

    def _connect(self, _: sqlite3.Connection | None, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                break
            fn, args, future, loop = job
            try:
                result = fn(self._conn, *args)
            except BaseException as exc:
                loop.call_soon_threadsafe(_reject, future, exc)
            else:
                loop.call_soon_threadsafe(_resolve, future, result)

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(connection, *args)`` for the thread; the future holds its result."""
        if self._closing:
            raise ThreadClosed("the connection is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, args, future, loop))
        return future

    async def close(self) -> None:
        """Run what is queued, close the connection, end the thread. Idempotent."""
        if self._closing:
            return
        closed = self.call(_close_connection)
        self._closing = True
        self._jobs.put(None)
        try:
            await closed
        finally:
            self._conn = None

    @property
    def thread_name(self) -> str:
        """The thread's name (tests count live connection threads by it)."""
        return self._thread.name


def _close_connection(conn: sqlite3.Connection | None) -> None:
    if conn is not None:
        conn.close()
