"""Cross-process revocation without Redis: watch ``control.db`` for other writers' commits.

How it works
------------
The CLI (``hypertab key revoke``) is a separate process writing the same ``control.db``.
Every revocation also appends a row to ``revocation_log`` in the same transaction. The
watcher keeps a dedicated read-only connection and, every ``interval`` (50 ms) or, in a hub,
when the process's :class:`~server.control.pulse.ControlPulse` saw a change (and once a
second regardless: :meth:`ControlDbWatcher.follow`), runs ``PRAGMA data_version``: SQLite
changes that number exactly when *another connection* committed to the file, and reading it
touches no table (a few microseconds, no disk I/O beyond the shared-memory WAL index). Only
then does the watcher read the log rows after the last ``seq`` it saw and publish them on
the local revocation bus. The pragma runs on a plain ``sqlite3`` connection on the event
loop (``busy_timeout`` 0: a busy file fails the round, the next one retries): through
aiosqlite, its three thread hops 20 times a second were most of an idle hub's CPU.

Why this and not a unix socket: the database is already the one place every writer goes
through, so the watcher cannot miss a revocation from a writer that forgot to notify, a
writer that crashed after committing, or a server that was restarting at the time (it
resumes from the log). A socket would need every writer to know every reader.

Rows this process published itself (``skip``) are not published twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import aiosqlite

from server.auth.principal import TenantId
from server.auth.revocation import RevocationBus, RevocationEvent, RevocationKind
from server.control.pulse import RECHECK_S, ControlPulse, Wakeup

log = logging.getLogger(__name__)


class ControlDbWatcher:
    """Publishes on ``bus`` every revocation another process commits to ``path``."""

    def __init__(
        self,
        path: Path,
        bus: RevocationBus,
        *,
        interval: float = 0.05,
        skip: Callable[[int], bool] | None = None,
    ) -> None:
        self._uri = f"{path.resolve().as_uri()}?mode=ro"
        self._bus = bus
        self._interval = interval
        self._skip = skip
        self._conn: aiosqlite.Connection | None = None
        self._version_conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._data_version: int | None = None
        self._last_seq = 0
        self._wakeup: Wakeup | None = None  # set by follow(): the process's pulse
        # poll_once may be called directly (tests, shutdown flush) while the loop runs.
        self._poll_lock = asyncio.Lock()

    @property
    def last_seq(self) -> int:
        """The highest ``revocation_log.seq`` seen so far."""
        return self._last_seq

    async def start(self) -> None:
        """Open the watch connection, note the current log position and start polling.

        Revocations committed before ``start`` are not replayed: no connection opened
        before them can exist in this process, and new handshakes read the database.
        """
        if self._task is not None:
            return
        self._conn = await aiosqlite.connect(self._uri, uri=True)
        version_conn = sqlite3.connect(
            self._uri, uri=True, isolation_level=None, check_same_thread=False
        )
        version_conn.execute("PRAGMA busy_timeout=0")
        self._version_conn = version_conn
        self._data_version = self._read_data_version()
        async with self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM revocation_log") as cur:
            row = await cur.fetchone()
        self._last_seq = int(row[0]) if row is not None else 0
        self._task = asyncio.create_task(self._run(), name="control-db-watcher")

    async def stop(self) -> None:
        """Stop polling and close the connection (idempotent)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        if self._version_conn is not None:
            self._version_conn.close()
            self._version_conn = None

    async def poll_once(self) -> int:
        """Check once for other writers' commits; return how many events were published.

        Raises what the read or the publish raised (a busy file, a bus outage); the next
        poll then reads the log again, so a failed round loses nothing.
        """
        async with self._poll_lock:
            try:
                version = self._read_data_version()
                if version == self._data_version:
                    return 0
                self._data_version = version
                return await self._publish_new()
            except BaseException:
                # data_version is consumed: force a log read on the next round.
                self._data_version = None
                raise

    def _read_data_version(self) -> int:
        assert self._version_conn is not None
        row = self._version_conn.execute("PRAGMA data_version").fetchone()
        return int(row[0]) if row is not None else 0

    async def _publish_new(self) -> int:
        assert self._conn is not None
        async with self._conn.execute(
            "SELECT seq, kind, tenant_id, credential_id, reason, at FROM revocation_log"
            " WHERE seq > ? ORDER BY seq",
            (self._last_seq,),
        ) as cur:
            rows = await cur.fetchall()
        published = 0
        for seq, kind, tenant, credential_id, reason, at in rows:
            if self._skip is not None and self._skip(int(seq)):
                self._last_seq = int(seq)
                continue
            try:
                event = RevocationEvent(
                    kind=RevocationKind(kind),
                    tenant=TenantId(tenant) if tenant is not None else None,
                    credential_id=credential_id,
                    reason=str(reason),
                    at=float(at),
                )
            except ValueError:
                log.warning("control-db watcher: skipped an unreadable revocation_log row")
                self._last_seq = int(seq)
                continue
            # Advance only after a successful publish, so a failed one is retried.
            await self._bus.publish(event)
            self._last_seq = int(seq)
            published += 1
        return published

    def follow(self, pulse: ControlPulse) -> None:
        """Poll when ``pulse`` sees control.db change (and once a second), instead of
        reading ``data_version`` on a timer of this watcher's own."""
        self._wakeup = Wakeup()
        pulse.subscribe(self._wakeup)

    async def _run(self) -> None:
        failures = 0
        while True:
            if self._wakeup is None:
                await asyncio.sleep(self._interval)
            else:
                await self._wakeup.wait(RECHECK_S)
                self._wakeup.clear()
            try:
                await self.poll_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Busy file, bus hiccup...: keep watching (poll_once forces a re-read).
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("control-db watcher: poll failed (%s)", type(exc).__name__)
                await asyncio.sleep(min(self._interval * failures, 1.0))
