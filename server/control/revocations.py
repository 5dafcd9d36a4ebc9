"""Revocations: committed with their ``revocation_log`` row, then published on the bus.

How it works
------------
A revoking change (a key revoked, rotated or narrowed, a tenant deleted or contained)
runs inside :meth:`Revocations.revoking`: a control.db transaction that collects the
:class:`RevocationEvent` s the change appends, writes one ``revocation_log`` row per event
before the commit, and publishes the events on the bus after it. This process's sockets
close at once through the bus; other processes hear of it through the bus too (Redis) or
through their :class:`~server.control.watch.ControlDbWatcher`, which republishes the log
rows written by *other* processes (rows this process published itself are skipped, so no
event is delivered twice). A process without a watcher (the CLI) pokes the running hubs'
wake-up sockets (:mod:`server.control.notify`) so they read the log at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable

from server.auth.revocation import RevocationBus, RevocationEvent
from server.control.db import ControlDb
from server.control.notify import poke_all
from server.control.watch import ControlDbWatcher

log = logging.getLogger(__name__)


class Revocations:
    """The revocation side of the control plane: ``revoking()`` transactions, the bus, the
    cross-process watcher."""

    def __init__(self, db: ControlDb, bus: RevocationBus, *, owns_bus: bool) -> None:
        self._db = db
        self.bus = bus
        """Revocations are published here; subscribe to close sockets."""
        self._owns_bus = owns_bus
        self.watcher: ControlDbWatcher | None = None
        """The cross-process watcher, once :meth:`watch` started it."""
        # revocation_log seqs this process published itself; the watcher skips them.
        self._own_seqs: set[int] = set()

    async def watch(self, interval: float) -> None:
        """Start the watcher: other processes' revocations are published within
        ``interval`` seconds (at once when they poke this process)."""
        self.watcher = ControlDbWatcher(
            self._db.path, self.bus, interval=interval, skip=self._is_own_seq
        )
        await self.watcher.start()

    async def stop_watching(self) -> None:
        """Stop the watcher (idempotent)."""
        if self.watcher is not None:
            await self.watcher.stop()

    async def close_bus(self) -> None:
        """Close the bus if this object made it."""
        if self._owns_bus:
            await self.bus.close()

    def _is_own_seq(self, seq: int) -> bool:
        if seq in self._own_seqs:
            self._own_seqs.discard(seq)
            return True
        return False

    async def _log(self, event: RevocationEvent, pending: list[int]) -> None:
        cursor = await self._db.conn.execute(
            "INSERT INTO revocation_log (kind, tenant_id, credential_id, reason, at)"
            " VALUES (?, ?, ?, ?, ?)",
            (event.kind.value, event.tenant, event.credential_id, event.reason, event.at),
        )
        if cursor.lastrowid is not None and self.watcher is not None:
            # Registered before the commit so the watcher can never see it unregistered;
            # removed again by the caller if the transaction rolls back.
            self._own_seqs.add(cursor.lastrowid)
            pending.append(cursor.lastrowid)

    async def _publish(self, events: Iterable[RevocationEvent]) -> None:
        for event in events:
            try:
                await self.bus.publish(event)
            except Exception as exc:
                # The revocation is committed and every new handshake refuses the key; open
                # sockets elsewhere are closed by the periodic recheck. Do not fail the admin.
                log.error("revocation publish failed (%s)", type(exc).__name__)

    @contextlib.asynccontextmanager
    async def revoking(self) -> AsyncIterator[list[RevocationEvent]]:
        """A write transaction that logs and then publishes the events it collects."""
        events: list[RevocationEvent] = []
        pending: list[int] = []
        try:
            async with self._db.transaction():
                yield events
                for event in events:
                    await self._log(event, pending)
        except BaseException:
            self._own_seqs.difference_update(pending)
            raise
        await self._publish(events)
        if events and self.watcher is None:
            # No watcher here (the CLI): wake the running hubs so they read the log now.
            await asyncio.to_thread(poke_all, self._db.path.parent)
