"""Sending the alert outbox: the log sink and the webhook sink, with retries.

How it works
------------
The dispatcher has its own connection to ``control.db``. Every ``poll`` it reads ``PRAGMA
data_version`` (:class:`~server.delivery.dbwatch.CommitWatch`: another connection
committed, maybe a new alert) and compares the clock
with the earliest retry due; only then does it run a round: lease the due rows
(:func:`~.outbox.claim_due`), write each to the log sink once, POST it to the webhook sink,
and record the outcome. When the webhook sink fails, the rest of the round is given back
unattempted (the receiver is down: no point in hammering it with every queued alert) and
waits for the failed row's next attempt. A row is marked delivered only after a 2xx, so a
process killed in between sends it again after restart: receivers drop repeats by the
``Hypertab-Id`` header. Leases keep two processes (two hubs, a hub and ``alerts deliver``)
from sending one row at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

import aiosqlite

from server.alerts import outbox
from server.alerts.config import AlertConfig
from server.alerts.rules import Alert
from server.audit.log import DEFAULT_RETENTION_DAYS
from server.control.pulse import ControlPulse, Wakeup, sleep_for
from server.delivery import signing
from server.delivery.dbwatch import CommitWatch
from server.delivery.errors import DeliveryError
from server.delivery.sender import Sender

log = logging.getLogger("server.alerts")

LEASE_EXTRA_S = 5.0
PURGE_EVERY_S = 3600.0
"""How often settled alerts past the audit retention are dropped."""


async def open_connection(path: Path) -> aiosqlite.Connection:
    """A connection of the dispatcher's own to ``control.db``.

    ``synchronous=NORMAL``: its writes are delivery bookkeeping. A power loss can undo the
    last "delivered" marks, and those alerts are sent again under the same id; the outbox
    rows themselves are written by the audited action's own (FULL) transaction.
    """
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        await conn.execute("PRAGMA busy_timeout=5000")
        await conn.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        await conn.close()
        raise
    return conn


class AlertDispatcher:
    """Delivers ``control.db``'s alert outbox. ``start()`` in a hub, or :meth:`run_round`."""

    def __init__(
        self,
        control_path: Path,
        config: AlertConfig,
        *,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        pulse: ControlPulse | None = None,
    ) -> None:
        self.path = control_path
        self.config = config
        self.clock = clock
        self.rng = rng
        self.sender = Sender(config.destinations, timeout=config.retry.timeout)
        self.counts: dict[str, int] = {"pending": 0, "delivered": 0, "failed": 0}
        self.sent = 0
        self._conn: aiosqlite.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = Wakeup()
        self.pulse = pulse
        """With a pulse, the loop wakes when control.db changed or a retry is due, not every
        ``poll`` (server/control/pulse.py)."""
        if pulse is not None:
            pulse.subscribe(self._wake)
        self._watch: CommitWatch | None = None
        self._next_due: float | None = 0.0  # run a round at start: rows left by a crash
        self._purged_at = float("-inf")
        self.retention_days = retention_days

    async def start(self) -> None:
        """Open the connection and start the loop."""
        self._conn = await open_connection(self.path)
        self._task = asyncio.create_task(self._run(), name="alert-dispatcher")

    def wake(self) -> None:
        """Look for new alerts now (after a local commit that may have raised one)."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop the loop, close the connection and the HTTP pool (idempotent)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        await self.sender.aclose()

    async def _changed(self) -> bool:
        if self._watch is None:
            self._watch = CommitWatch(self.path)
        return self._watch.changed()

    def _timeout(self) -> float:
        """How long the loop may sleep: ``poll``, or with a pulse until the next retry."""
        if self.pulse is None:
            return self.config.poll
        return sleep_for(self._next_due, self.clock())

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._wake.wait(self._timeout())
            woken = self._wake.is_set()
            self._wake.clear()
            try:
                due = self._next_due is not None and self._next_due <= self.clock()
                if woken or due or await self._changed():
                    await self.run_round()
                if time.monotonic() - self._purged_at > PURGE_EVERY_S:
                    self._purged_at = time.monotonic()
                    assert self._conn is not None
                    await outbox.purge(
                        self._conn, before=self.clock() - self.retention_days * 86_400.0
                    )
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("alert dispatcher: round failed (%s)", type(exc).__name__)
                await asyncio.sleep(min(self.config.poll * failures, 2.0))

    async def run_round(self, conn: aiosqlite.Connection | None = None) -> int:
        """Deliver what is due now; returns how many alerts were delivered.

        ``conn``: a control connection to use (the CLI's); default the dispatcher's own.
        """
        db = conn if conn is not None else self._conn
        assert db is not None, "start() the dispatcher or pass a connection"
        now = self.clock()
        lease = self.config.retry.timeout + LEASE_EXTRA_S
        claimed = await outbox.claim_due(db, now=now, lease=lease)
        sent_before = self.sent
        for index, alert in enumerate(claimed):
            retry_at = await self._deliver(db, alert)
            if retry_at is not None:
                rest = [a.row for a in claimed[index + 1 :]]
                await outbox.release(db, rest, next_at=retry_at)
                break
        self.counts = await outbox.counts(db)
        self._next_due = await outbox.next_due(db)
        return self.sent - sent_before

    async def _deliver(self, db: aiosqlite.Connection, alert: Alert) -> float | None:
        """One alert to every sink; when the webhook sink failed, the time of the retry."""
        cfg = self.config
        if cfg.log and not await outbox.logged(db, alert.row):
            log.warning(
                "alert: %s",
                alert.kind,
                extra={"alert": alert.kind, "alert_id": alert.event_id, "tenant": alert.tenant},
            )
            await outbox.mark_logged(db, alert.row)
        if cfg.webhook_url is None:
            await outbox.mark_delivered(db, alert.row, now=self.clock())
            self.sent += 1
            return None
        body = json.dumps(alert.body(), sort_keys=True, separators=(",", ":")).encode()
        stamp = int(self.clock())
        try:
            await self.sender.post(
                cfg.webhook_url,
                body,
                signing.headers(alert.event_id, cfg.webhook_secret, stamp, body),
            )
        except DeliveryError as exc:
            attempts = alert.attempts + 1
            now = self.clock()
            if cfg.retry.gives_up(attempts, alert.ts, now):
                await outbox.mark_failed(db, alert.row, attempts=attempts, error=str(exc))
                log.error(
                    "alert delivery failed for good: %s",
                    alert.event_id,
                    extra={"alert": alert.kind, "attempts": attempts},
                )
                return None  # this row is settled; the next one may still be tried
            retry_at = now + cfg.retry.delay(attempts, self.rng())
            await outbox.mark_retry(
                db, alert.row, attempts=attempts, next_at=retry_at, error=str(exc)
            )
            return retry_at
        await outbox.mark_delivered(db, alert.row, now=self.clock())
        self.sent += 1
        return None
