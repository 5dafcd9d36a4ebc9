"""Alerts inside a running hub: the dispatcher, and the events only the hub sees.

- :meth:`AlertsHub.auth_failed` is an ``on_auth_failure`` hook (must not block): failures
  are counted per peer address and per tenant (of a well-formed key id) by
  :class:`~.burst.BurstDetector`; a burst writes one ``alert.handshake_failures`` entry.
- :meth:`AlertsHub.abuse_closed`: a connection closed for rate abuse.
- The dispatcher delivers the outbox (``server.alerts.dispatcher``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from server.alerts import events
from server.alerts.burst import BurstDetector
from server.alerts.config import AlertConfig
from server.alerts.dispatcher import AlertDispatcher
from server.audit.chain import AuditEntry
from server.audit.log import retention_days_from_env
from server.auth.ids import is_key_id
from server.auth.principal import KeyId
from server.control.plane import ControlPlane
from server.control.pulse import ControlPulse
from server.tasks import TaskOwner

log = logging.getLogger("server.alerts")


class AlertsHub:
    """One hub process's alerting. ``await start(control)``, then ``await stop()``."""

    def __init__(
        self,
        config: AlertConfig,
        burst: BurstDetector | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.burst = burst if burst is not None else BurstDetector.from_env()
        self.clock = clock
        self.control: ControlPlane | None = None
        self.dispatcher: AlertDispatcher | None = None
        self.tasks = TaskOwner("alerts")

    @property
    def failed(self) -> int:
        """Alerts given up after the retry bound (as of the last round)."""
        return self.dispatcher.counts["failed"] if self.dispatcher is not None else 0

    async def start(self, control: ControlPlane, *, pulse: ControlPulse | None = None) -> None:
        """Start delivering ``control.db``'s alert outbox (woken by ``pulse`` when given)."""
        self.control = control
        self.dispatcher = AlertDispatcher(
            control.path,
            self.config,
            clock=self.clock,
            retention_days=retention_days_from_env(),
            pulse=pulse,
        )
        await self.dispatcher.start()

    async def stop(self) -> None:
        """Finish writing pending alert entries, stop the dispatcher."""
        for _ in range(100):  # up to 2 s for alert entries being written
            if not len(self.tasks):
                break
            await asyncio.sleep(0.02)
        await self.tasks.cancel_all()
        if self.dispatcher is not None:
            await self.dispatcher.stop()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks.spawn(coro, "alert entry")

    async def _record(self, entry: AuditEntry) -> None:
        if self.control is None:
            return
        try:
            await events.record(self.control, entry)
        except Exception as exc:  # the failures themselves are in the audit log already
            log.error("could not record an alert entry (%s)", type(exc).__name__)
            return
        if self.dispatcher is not None:
            self.dispatcher.wake()

    # --- hooks ------------------------------------------------------------------------------

    def auth_failed(self, reason: str, ip: str | None, credential_id: str | None) -> None:
        """``on_auth_failure`` hook: count per address and per tenant."""
        if reason == "too_many_connections":
            return
        now = self.clock()
        if ip:
            count = self.burst.record(f"ip:{ip}", now)
            if count is not None:
                self._spawn(
                    self._record(events.handshake_failures("ip", ip, count, self.burst.window, now))
                )
        if credential_id and is_key_id(credential_id) and self.control is not None:
            self._spawn(self._count_tenant(KeyId(credential_id), now))

    async def _count_tenant(self, key_id: KeyId, now: float) -> None:
        assert self.control is not None
        try:
            record = await self.control.get_key(key_id)
        except Exception:
            return
        if record is None:
            return
        count = self.burst.record(f"tenant:{record.tenant}", now)
        if count is not None:
            entry = events.handshake_failures(
                "tenant", record.tenant, count, self.burst.window, now, tenant=record.tenant
            )
            await self._record(entry)

    def abuse_closed(self, tenant: str, credential_id: str, ip: str | None) -> None:
        """A connection was closed for rate abuse."""
        self._spawn(self._record(events.abuse_closed(tenant, credential_id, ip, self.clock())))
