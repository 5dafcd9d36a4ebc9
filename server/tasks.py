"""Background tasks with an owner: every task the hub starts is kept, and its failure logged.

asyncio holds only a weak reference to a task: a task nobody keeps can be garbage-collected
mid-flight, and one that fails with nobody awaiting it surfaces, if ever, as "Task exception
was never retrieved" at some later garbage collection, without saying what failed. A
:class:`TaskOwner` keeps a strong reference to each task it starts until the task ends,
retrieves the task's exception and logs it under the task's name (the exception's type only:
messages can carry data), and cancels what is left when its owner stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskOwner:
    """Starts, keeps and cancels the background tasks of one component."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()
        self.failures = 0
        """How many tasks ended with an exception (for tests and metrics)."""

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` in the background as ``name``; its failure is logged, not lost."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.owner}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # retrieved: asyncio will not complain about it later
        if exc is not None:
            self.failures += 1
            log.error(
                "background task %s failed (%s)",
                task.get_name(),
                type(exc).__name__,
                extra={"task": task.get_name(), "error": type(exc).__name__},
            )

    def __len__(self) -> int:
        return len(self._tasks)

    async def cancel_all(self) -> None:
        """Cancel every task still running and wait for them to end (idempotent)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
