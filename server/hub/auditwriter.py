"""The audit log inside a running hub: failed handshakes, rate-limit summaries, retention.

(The hub's audit messages, ``tool_call`` and ``audit_export``, are ``server/hub/audit.py``.)

How it works
------------
- **Failed handshakes** arrive through the gate's ``on_auth_failure`` hooks, which must not
  block: :meth:`AuditHub.auth_failed` queues an ``auth.failed`` entry (reason category, peer
  address and public key id; never the credential) and a worker writes queued entries to the
  control log, many per transaction. The queue is bounded: under a flood, entries beyond it
  are counted and written as one ``auth.failed`` entry with reason ``overflow`` and the count.
  (Per-address floods are cut off earlier by the failed-handshake throttle: 429.)
- **Rate-limit denials** are aggregated by the admission's
  :class:`~server.ratelimit.DenialAggregator`; every ``tick_s`` the closed windows are
  written as one ``rate_limit.exceeded`` entry per principal per window, into the tenant's log.
- **Retention**: every ``purge_every_s`` (first run ``first_purge_s`` after start), entries
  older than ``retention_days`` (``HYPERTAB_AUDIT_RETENTION_DAYS``, default 90) are purged
  from the control log and from every live tenant's log (``log.purge``: a prefix only, the
  anchor moved, the chain still verifies).
- ``stop()`` writes every open denial window and every queued entry before the stores close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from server.audit import events
from server.audit.actions import Action
from server.audit.chain import AuditEntry
from server.audit.log import append, purge_expired, retention_days_from_env
from server.control.plane import ControlPlane
from server.ratelimit.aggregate import DenialAggregator, DenialSummary
from server.store.manager import StoreManager

log = logging.getLogger(__name__)

QUEUE_SIZE = 1024
"""Failed-handshake entries waiting to be written, at most."""

_WRITE_BATCH = 200


class AuditHub:
    """Background audit writing for one hub process. ``start(control)``, then ``stop()``."""

    def __init__(
        self,
        stores: StoreManager,
        denials: DenialAggregator,
        *,
        retention_days: float | None = None,
        clock: Callable[[], float] = time.time,
        tick_s: float = 5.0,
        first_purge_s: float = 60.0,
        purge_every_s: float = 86_400.0,
    ) -> None:
        self.stores = stores
        self.denials = denials
        self.retention_days = (
            retention_days if retention_days is not None else retention_days_from_env()
        )
        self.clock = clock
        self.tick_s = tick_s
        self.first_purge_s = first_purge_s
        self.purge_every_s = purge_every_s
        self.control: ControlPlane | None = None
        self.dropped = 0
        self._queue: asyncio.Queue[AuditEntry] = asyncio.Queue(QUEUE_SIZE)
        self._tasks: list[asyncio.Task[Any]] = []

    async def start(self, control: ControlPlane) -> None:
        """Start the writer and the periodic housekeeping."""
        self.control = control
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._writer()), loop.create_task(self._periodic())]

    async def stop(self) -> None:
        """Write what is pending (denial windows, queued entries), then stop."""
        with contextlib.suppress(Exception):
            await self._write_denials(self.denials.drain_all())
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), 5.0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    # --- failed handshakes ------------------------------------------------------------------

    def auth_failed(self, reason: str, ip: str | None, credential_id: str | None) -> None:
        """The gate's ``on_auth_failure`` hook: queue an ``auth.failed`` control entry."""
        if reason == "too_many_connections":  # capacity, not an authentication failure
            return
        entry = events.auth_failed(reason, ip, self.clock(), credential_id)
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.dropped += 1

    async def flush(self) -> None:
        """Wait until every queued failed-handshake entry is written."""
        await self._queue.join()

    async def _writer(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _WRITE_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            dropped, self.dropped = self.dropped, 0
            if dropped:
                batch.append(
                    AuditEntry(
                        self.clock(),
                        events.ANONYMOUS,
                        Action.AUTH_FAILED,
                        details={"reason": "overflow", "count": dropped},
                    )
                )
            try:
                assert self.control is not None
                async with self.control.transaction() as conn:
                    for entry in batch:
                        await append(conn, entry, commit=False)
            except Exception as exc:
                log.error("auth failure audit entries not written (%s)", type(exc).__name__)
            finally:
                for _ in range(len(batch) - (1 if dropped else 0)):
                    self._queue.task_done()

    # --- rate-limit summaries ---------------------------------------------------------------

    async def flush_denials(self, now: float | None = None) -> int:
        """Write the denial windows closed by ``now``; returns how many entries."""
        return await self._write_denials(self.denials.drain(self.clock() if now is None else now))

    async def _write_denials(self, summaries: list[DenialSummary]) -> int:
        by_tenant: dict[str, list[DenialSummary]] = defaultdict(list)
        for summary in summaries:
            by_tenant[summary.tenant].append(summary)
        written = 0
        for tenant, items in by_tenant.items():
            try:
                async with self.stores.use(tenant) as store, store.exclusive() as conn:
                    for summary in items:
                        await append(conn, events.rate_limit_exceeded(summary), commit=False)
                    await conn.commit()
                written += len(items)
            except Exception as exc:
                log.error("rate-limit audit entries not written (%s)", type(exc).__name__)
        return written

    # --- retention --------------------------------------------------------------------------

    async def purge_expired(self, now: float | None = None) -> int:
        """Purge entries past retention from the control log and every live tenant's log."""
        at = self.clock() if now is None else now
        assert self.control is not None
        purged = 0
        async with self.control.transaction() as conn:
            purged += await purge_expired(conn, at, self.retention_days)
        for tenant in await self.control.list_tenants():
            try:
                async with self.stores.use(tenant.id) as store, store.exclusive() as conn:
                    purged += await purge_expired(conn, at, self.retention_days)
            except Exception as exc:
                log.error("audit purge failed for a tenant (%s)", type(exc).__name__)
        return purged

    async def _periodic(self) -> None:
        next_purge = time.monotonic() + self.first_purge_s
        while True:
            await asyncio.sleep(self.tick_s)
            with contextlib.suppress(Exception):
                await self.flush_denials()
            if time.monotonic() >= next_purge:
                next_purge = time.monotonic() + self.purge_every_s
                try:
                    await self.purge_expired()
                except Exception as exc:
                    log.error("audit retention purge failed (%s)", type(exc).__name__)
