"""Delivering tenant webhook outboxes from a running hub.

How it works
------------
The dispatcher knows the tenants with webhooks (``control.db``'s ``_ht_webhook_tenants``,
re-read whenever another process committed to ``control.db``: ``PRAGMA data_version``,
checked every ``poll``, so a webhook added by the CLI is served at once).
A commit of such a tenant (``committed``, called from the hub's ``on_commit``) marks it
dirty; one worker task per dirty tenant then leases the tenant's store and repeats:

1. in the writer's thread, with the writer paused for a few hundred microseconds, pick the
   next batch: a webhook that is due, the table of its oldest outbox row, and that table's
   rows in order (at most ``MAX_BATCH``), and note its last row (``pending_upto``): a
   retry, even after a crash, sends exactly these rows again, under the same id;
2. POST it (no lock held) signed with the webhook's secret;
3. in the writer's thread again: on a 2xx delete the rows; on a failure keep them, note the
   attempt and when to try again; past the retry bound disable the webhook, drop its
   pending changes and count a failed batch (a passing ``webhook test`` enables it again).

Per webhook, one batch is in flight at a time, so a table's versions arrive in order. A hub
restarted after a crash starts with every indexed tenant dirty: rows committed before the
crash are delivered from the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from server.auth.principal import TenantId
from server.control.pulse import ControlPulse, Wakeup, sleep_for
from server.delivery import signing
from server.delivery.dbwatch import CommitWatch
from server.delivery.destination import DestinationPolicy
from server.delivery.errors import DeliveryError
from server.delivery.retry import RetryPolicy
from server.delivery.sender import Sender
from server.store.schema import tenant_path
from server.tasks import TaskOwner
from server.webhooks import payload
from server.webhooks.registry import INDEX_DDL, index_in_transaction, signing_secret

if TYPE_CHECKING:
    from server.control.plane import ControlPlane
    from server.lifecycle.service import Lifecycle
    from server.store.manager import StoreManager
    from server.store.tenant import TenantStore

log = logging.getLogger("server.webhooks")

LIVE_RECHECK_S = 5.0


def _is_file(path: Path) -> bool:
    return os.path.isfile(path)  # one stat: cheaper than a thread hop


@dataclass(frozen=True, slots=True)
class Batch:
    """The rows of one delivery."""

    hook: str
    url: str
    attempts: int
    table: str
    upto: int
    """The last outbox seq in the batch."""
    changes: list[bytes]
    first_version: int
    last_version: int


def next_batch(conn: sqlite3.Connection, now: float) -> tuple[Batch | None, float | None]:
    """The next due batch of any webhook, and when the earliest waiting one is due."""
    due: float | None = None
    hooks = conn.execute(
        "SELECT id, url, attempts, next_at, pending_upto FROM _ht_webhooks"
        " WHERE disabled_at IS NULL ORDER BY id"
    ).fetchall()
    for hook, url, attempts, next_at, pending_upto in hooks:
        if next_at > now:
            due = next_at if due is None else min(due, next_at)
            continue
        first = conn.execute(
            "SELECT tbl FROM _ht_webhook_outbox WHERE hook = ? ORDER BY seq LIMIT 1", (hook,)
        ).fetchone()
        if first is None:
            continue
        table = str(first[0])
        if pending_upto is not None:  # a retry: exactly the rows of the failed attempt
            rows = conn.execute(
                "SELECT seq, version, change FROM _ht_webhook_outbox WHERE hook = ? AND tbl = ?"
                " AND seq <= ? ORDER BY seq",
                (hook, table, pending_upto),
            ).fetchall()
        else:
            rows = conn.execute(
                "SELECT seq, version, change FROM _ht_webhook_outbox WHERE hook = ? AND tbl = ?"
                " ORDER BY seq LIMIT ?",
                (hook, table, payload.MAX_BATCH),
            ).fetchall()
            size, kept = 0, 0
            for _, _, blob in rows:
                size += len(blob)
                if kept and size > payload.MAX_BATCH_BYTES:
                    break
                kept += 1
            rows = rows[:kept]
        if not rows:
            continue
        if pending_upto is None:
            # Fix the range before sending: resent after a crash, the batch is the same
            # one (same rows, same Hypertab-Id), so the receiver can drop the repeat.
            conn.execute(
                "UPDATE _ht_webhooks SET pending_upto = ? WHERE id = ?", (rows[-1][0], hook)
            )
        batch = Batch(
            str(hook), str(url), int(attempts), table, int(rows[-1][0]),
            [bytes(r[2]) for r in rows], int(rows[0][1]), int(rows[-1][1]),
        )  # fmt: skip
        return batch, due
    return None, due


def mark_delivered(conn: sqlite3.Connection, batch: Batch, now: float) -> None:
    """The batch reached the receiver: its rows go."""
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "DELETE FROM _ht_webhook_outbox WHERE hook = ? AND tbl = ? AND seq <= ?",
            (batch.hook, batch.table, batch.upto),
        )
        conn.execute(
            "UPDATE _ht_webhooks SET attempts = 0, next_at = 0, pending_upto = NULL,"
            " last_error = NULL, delivered = delivered + 1, last_delivered_at = ? WHERE id = ?",
            (now, batch.hook),
        )


def mark_retry(
    conn: sqlite3.Connection, batch: Batch, attempts: int, next_at: float, error: str
) -> None:
    """The attempt failed: the same rows again at ``next_at``."""
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "UPDATE _ht_webhooks SET attempts = ?, next_at = ?, pending_upto = ?, last_error = ?"
            " WHERE id = ?",
            (attempts, next_at, batch.upto, error[:300], batch.hook),
        )


def mark_failed(conn: sqlite3.Connection, batch: Batch, error: str, now: float) -> None:
    """Past the retry bound: the webhook is disabled and its pending changes dropped (a dead
    receiver must not grow the tenant's database without bound); the receiver sees the
    version gap once a passing ``webhook test`` enables it again."""
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        pending = conn.execute(
            "SELECT COUNT(*) FROM _ht_webhook_outbox WHERE hook = ?", (batch.hook,)
        ).fetchone()[0]
        note = (
            f"disabled at {batch.table} v{batch.first_version}-v{batch.last_version}, "
            f"{pending} pending change(s) dropped: {error}"
        )[:300]
        conn.execute("DELETE FROM _ht_webhook_outbox WHERE hook = ?", (batch.hook,))
        conn.execute(
            "UPDATE _ht_webhooks SET attempts = 0, next_at = 0, pending_upto = NULL,"
            " last_error = ?, failed = failed + 1, last_failed = ?, disabled_at = ?"
            " WHERE id = ?",
            (error[:300], note, now, batch.hook),
        )


class WebhookDispatcher:
    """Delivers the webhook outboxes of one hub's tenants. ``start()``, ``stop()``."""

    def __init__(
        self,
        stores: StoreManager,
        control: ControlPlane,
        lifecycle: Callable[[], Lifecycle | None],
        *,
        policy: DestinationPolicy,
        retry: RetryPolicy,
        poll: float = 0.05,
        pulse: ControlPulse | None = None,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.stores = stores
        self.control = control
        self.lifecycle = lifecycle
        self.retry = retry
        self.poll = poll
        self.clock = clock
        self.rng = rng
        self.sender = Sender(policy, timeout=retry.timeout)
        self.delivered = 0
        """Batches delivered (``hypertab_webhook_batches_delivered``)."""
        self.failed = 0
        """Batches dropped past the retry bound (``hypertab_webhook_batches_failed``)."""
        self._known: set[str] = set()
        self._dirty: set[str] = set()
        self._due: dict[str, float] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self.tasks = TaskOwner("webhooks")
        self._secrets: dict[tuple[str, str], bytes] = {}
        self._live: dict[str, float] = {}  # tenant -> when its record was last seen live
        self._wake = Wakeup()
        self.pulse = pulse
        """With a pulse, the loop wakes when control.db changed or a retry is due, not every
        ``poll`` (server/control/pulse.py)."""
        if pulse is not None:
            pulse.subscribe(self._wake)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Read the index; every indexed tenant starts dirty (a crash may have left rows)."""
        async with self.control.transaction() as conn:
            await conn.execute(INDEX_DDL)
        await self._refresh()
        self._dirty |= self._known
        self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")
        self._wake.set()

    async def stop(self) -> None:
        """Stop the loop and the workers (undelivered rows stay in the outboxes)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self.tasks.cancel_all()
        self._workers.clear()
        await self.sender.aclose()

    def watch(self, tenant: str, *, present: bool) -> None:
        """This process changed ``tenant``'s webhooks (its own commits do not change the
        control connection's ``data_version``): serve or forget the tenant now."""
        if present:
            self._known.add(tenant)
            self._dirty.add(tenant)
            self._wake.set()
        else:
            self._known.discard(tenant)

    def committed(self, tenant: str) -> None:
        """A commit of ``tenant`` may have filled its outbox (hub ``on_commit``; cheap)."""
        if tenant in self._known:
            self._dirty.add(tenant)
            self._wake.set()

    async def _refresh(self) -> None:
        rows = await self.control.fetchall("SELECT tenant_id FROM _ht_webhook_tenants")
        known = {str(r[0]) for r in rows}
        self._dirty |= known - self._known  # just added: changes may already wait
        self._known = known

    def _timeout(self) -> float:
        """How long the loop may sleep: ``poll``, or with a pulse until the next retry."""
        if self.pulse is None:
            return self.poll
        return sleep_for(min(self._due.values(), default=None), self.clock())

    async def _run(self) -> None:
        watch = CommitWatch(self.control.path)
        try:
            await self._loop(watch)
        finally:
            watch.close()

    async def _loop(self, watch: CommitWatch) -> None:
        while True:
            await self._wake.wait(self._timeout())
            self._wake.clear()
            try:
                if watch.changed():  # another connection committed: maybe ``webhook add``
                    await self._refresh()
            except Exception as exc:
                log.warning("webhook dispatcher: index read failed (%s)", type(exc).__name__)
            now = self.clock()
            for tenant, at in list(self._due.items()):
                if at <= now:
                    del self._due[tenant]
                    self._dirty.add(tenant)
            for tenant in list(self._dirty):
                if tenant not in self._workers:
                    self._dirty.discard(tenant)
                    task = self.tasks.spawn(self._drain(tenant), "drain")
                    self._workers[tenant] = task
                    task.add_done_callback(functools.partial(self._worker_done, tenant))

    def _worker_done(self, tenant: str, _task: asyncio.Task[None]) -> None:
        self._workers.pop(tenant, None)
        if tenant in self._dirty:
            self._wake.set()

    async def _usable(self, tenant: str) -> bool:
        """Never open (and so create) the database of a tenant that is gone: its file must
        exist (a stat, every time) and its record be live (read at most every few seconds:
        a drain runs after nearly every commit of a busy tenant)."""
        if not _is_file(tenant_path(self.stores.data_dir, tenant)):
            return False
        checked = self._live.get(tenant)
        if checked is not None and time.monotonic() - checked < LIVE_RECHECK_S:
            return True
        record = await self.control.get_tenant(TenantId(tenant))
        if record is None or not record.active:
            self._live.pop(tenant, None)
            return False
        self._live[tenant] = time.monotonic()
        return True

    async def _drain(self, tenant: str) -> None:
        try:
            if not await self._usable(tenant):  # deleted: its webhooks went with it
                self._known.discard(tenant)
                async with self.control.transaction() as conn:
                    await index_in_transaction(conn, tenant, has_webhooks=False)
                return
            async with self.stores.use(tenant) as store:
                while True:
                    batch, due = await store.run_exclusive(next_batch, self.clock())
                    if batch is None:
                        if due is not None:
                            self._due[tenant] = due
                        return
                    await self._deliver(store, tenant, batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("webhook delivery round failed (%s)", type(exc).__name__)
            self._due[tenant] = self.clock() + 1.0

    async def _secret(self, store: TenantStore, tenant: str, hook: str) -> bytes:
        cached = self._secrets.get((tenant, hook))
        if cached is not None:
            return cached
        lifecycle = self.lifecycle()
        if lifecycle is None:
            raise DeliveryError("no master keys: the signing secret cannot be read")
        keys = await lifecycle.keys_for(TenantId(tenant), now=self.clock())
        async with store.exclusive() as conn:
            secret = await signing_secret(conn, TenantId(tenant), keys, hook)
        self._secrets[(tenant, hook)] = secret
        return secret

    async def _deliver(self, store: TenantStore, tenant: str, batch: Batch) -> None:
        event_id, body = payload.body(batch.hook, tenant, batch.table, batch.changes)
        try:
            secret = await self._secret(store, tenant, batch.hook)
            await self.sender.post(
                batch.url, body, signing.headers(event_id, secret, int(self.clock()), body)
            )
        except Exception as exc:
            error = str(exc) if isinstance(exc, DeliveryError) else type(exc).__name__
            attempts = batch.attempts + 1
            if attempts >= self.retry.max_attempts:  # the bound for a batch: its attempts
                await store.run_exclusive(mark_failed, batch, error, self.clock())
                self.failed += 1
                log.error("webhook batch given up after %d attempts", attempts)
            else:
                next_at = self.clock() + self.retry.delay(attempts, self.rng())
                await store.run_exclusive(mark_retry, batch, attempts, next_at, error)
            return
        await store.run_exclusive(mark_delivered, batch, self.clock())
        self.delivered += 1
