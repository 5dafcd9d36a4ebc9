"""A tenant's store: its SQLite file, its single writer task and its read connection.

The writer task owns the write connection. Batches queue up while a transaction runs and
are committed together (group commit); each batch's future resolves only after COMMIT, and
``on_commit`` hands the committed changes, in version order, to the hub before the acks are
sent. Reads go through a second, read-only connection so snapshots never wait for writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from protocol.messages import Change, Query
from protocol.ops import Op
from server.audit.log import ensure_schema as ensure_audit_schema
from server.engine.batch import BatchError, FormulaCheck
from server.engine.catalog import TableState
from server.store import reader
from server.store.catalog import data_version
from server.store.failures import log_failure
from server.store.query import install_functions
from server.store.schema import Durability, checkpoint, configure
from server.store.writer import BatchOutcome, BatchRequest, FormulaRecompute, commit_group

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 32
"""Commits between WAL checkpoints (run on the read connection, off the commit path)."""

MAX_GROUP = 512
"""Most batches in one transaction: bounds the latency one group adds to the next."""

OnCommit = Callable[[str, str, list[Change]], None]
"""``on_commit(tenant, table, changes)``: called on the event loop right after COMMIT."""

T = TypeVar("T")


class StoreError(Exception):
    """Root of the store's exceptions: the store cannot serve the request."""


class StoreClosed(StoreError):
    """The store is closed or closing."""


class _Job:
    __slots__ = ("future", "request")

    def __init__(self, request: BatchRequest, future: asyncio.Future[BatchOutcome]) -> None:
        self.request = request
        self.future = future


async def _run_in(db: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(raw_connection, *args)`` in the connection's own thread, in one hop.

    aiosqlite exposes no public way to run a function in its thread; ``_execute`` is that
    way (pinned in pyproject). One hop per group commit instead of one per statement is the
    difference between the hub being CPU-bound on thread handoffs or not.
    """
    raw: sqlite3.Connection = db._conn
    result: T = await db._execute(fn, raw, *args)  # type: ignore[no-untyped-call]
    return result


def _catalog_if_changed(
    conn: sqlite3.Connection, seen: int
) -> tuple[int, dict[str, TableState], int] | None:
    version = data_version(conn)
    if version == seen:
        return None
    tables, next_sql = reader.load_catalog(conn)
    return version, tables, next_sql


class TenantStore:
    """One tenant's database. Create with :meth:`open`; close with :meth:`close`."""

    def __init__(
        self,
        tenant: str,
        writer: aiosqlite.Connection,
        readers: aiosqlite.Connection,
        tables: dict[str, TableState],
        next_sql: int,
        on_commit: OnCommit,
        check_formula: FormulaCheck | None,
        recompute: FormulaRecompute | None,
    ) -> None:
        self.tenant = tenant
        self._writer = writer
        self._reader = readers
        self._tables = tables
        self._next_sql = next_sql
        self._on_commit = on_commit
        self._check_formula = check_formula
        self._recompute = recompute
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._closing = False
        self._closed = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._checkpoint: asyncio.Task[None] | None = None
        self._task = asyncio.get_running_loop().create_task(self._run())
        self.users = 0
        self.last_used = time.monotonic()
        self.commits = 0
        self._seen = 0
        """``PRAGMA data_version`` when the catalog was last read: another hub process
        writing this database changes it, and the catalog is read again."""

    @classmethod
    async def open(
        cls,
        tenant: str,
        path: Path,
        *,
        durability: Durability,
        on_commit: OnCommit,
        check_formula: FormulaCheck | None = None,
        recompute: FormulaRecompute | None = None,
    ) -> TenantStore:
        """Open (creating if needed) a tenant database and start its writer."""
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await aiosqlite.connect(path, isolation_level=None)
        try:
            await _run_in(writer, configure, durability, True)
            await ensure_audit_schema(writer)  # the tenant's audit log (server/audit/events.py)
            seen = await _run_in(writer, data_version)  # before the catalog: a commit between
            tables, next_sql = await _run_in(writer, reader.load_catalog)  # costs one re-read
            readers = await aiosqlite.connect(path, isolation_level=None)
            await _run_in(readers, configure, durability, False)
            await _run_in(readers, install_functions)
        except BaseException:
            await writer.close()
            raise
        store = cls(tenant, writer, readers, tables, next_sql, on_commit, check_formula, recompute)
        store._seen = seen
        return store

    # --- writes ---------------------------------------------------------------------------

    def submit(
        self, table: str, client: str, op: str, ops: list[Op], by: str
    ) -> asyncio.Future[BatchOutcome]:
        """Queue a batch; the future resolves once it is committed (or refused)."""
        if self._closing:
            raise StoreClosed("store is closing")
        future: asyncio.Future[BatchOutcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(BatchRequest(table, client, op, ops, by), future))
        return future

    async def apply(self, table: str, client: str, op: str, ops: list[Op], by: str) -> BatchOutcome:
        """Queue a batch and wait until it is committed (or refused)."""
        return await self.submit(table, client, op, ops, by)

    async def _run(self) -> None:
        queue = self._queue
        stop = False
        while not stop:
            first = await queue.get()
            if first is None:
                break
            jobs = [first]
            while not queue.empty() and len(jobs) < MAX_GROUP:
                job = queue.get_nowait()
                if job is None:
                    stop = True
                    break
                jobs.append(job)
            await self._commit(jobs)
        self._closed.set()

    async def _commit(self, jobs: list[_Job]) -> None:
        async with self._write_lock:
            await self._commit_locked(jobs)

    async def _commit_locked(self, jobs: list[_Job]) -> None:
        try:
            result = await _run_in(
                self._writer,
                commit_group,
                self._tables,
                self._next_sql,
                [job.request for job in jobs],
                time.time(),
                self._check_formula,
                self._recompute,
                self._seen,
            )
        except sqlite3.Error as exc:
            # The whole group failed (BEGIN or COMMIT refused: disk full, read-only file...).
            error = log_failure(self.tenant, "group commit", exc, len(jobs))
            self._fail(jobs, error)
            return
        except Exception:
            log.exception("group commit failed for tenant store")  # a bug of ours
            self._fail(jobs, BatchError("internal", "the store failed to commit"))
            return
        for outcome in result.outcomes:
            if outcome.failure is not None:
                log_failure(self.tenant, "batch", outcome.failure, 1)
        if result.catalog is not None:  # another process wrote: its tables and versions
            self._tables = result.catalog
        self._seen = result.data_version
        self._tables.update(result.tables)
        self._next_sql = result.next_sql
        self.commits += 1
        if self.commits % CHECKPOINT_EVERY == 0 and self._checkpoint is None:
            self._checkpoint = asyncio.get_running_loop().create_task(self._run_checkpoint())
        by_table: dict[str, list[Change]] = {}
        for job, outcome in zip(jobs, result.outcomes, strict=True):
            if outcome.change is not None:
                by_table.setdefault(job.request.table, []).append(outcome.change)
        for table, changes in by_table.items():
            try:
                self._on_commit(self.tenant, table, changes)
            except Exception:
                log.exception("broadcast after commit failed")
        for job, outcome in zip(jobs, result.outcomes, strict=True):
            if not job.future.done():
                job.future.set_result(outcome)

    @staticmethod
    def _fail(jobs: list[_Job], error: BatchError) -> None:
        for job in jobs:
            if not job.future.done():
                job.future.set_result(BatchOutcome(error=error))

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[aiosqlite.Connection]:
        """The write connection, with the writer paused, for features that write their own
        tables (secrets, audit, functions) in their own transactions. Keep it short: queued
        batches wait meanwhile. The connection is in autocommit mode: ``BEGIN`` explicitly.
        """
        if self._closing:
            raise StoreClosed("store is closing")
        async with self._write_lock:
            yield self._writer

    async def run_exclusive(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(sqlite3_connection, *args)`` in the writer's thread, writer paused."""
        async with self.exclusive():
            return await _run_in(self._writer, fn, *args)

    async def _run_checkpoint(self) -> None:
        try:
            await _run_in(self._reader, checkpoint)
        except Exception as exc:  # the next one retries; the WAL only grows meanwhile
            log.warning("checkpoint failed (%s)", type(exc).__name__)
        finally:
            self._checkpoint = None

    async def refresh(self) -> None:
        """Re-read the catalog if another hub process changed the database since (one
        thread hop when it did not): for lookups that missed in a stale catalog."""
        async with self._write_lock:
            found = await _run_in(self._writer, _catalog_if_changed, self._seen)
        if found is not None:
            self._seen, self._tables, self._next_sql = found

    # --- reads ----------------------------------------------------------------------------

    def table(self, table_id: str) -> TableState | None:
        """A live table by id."""
        state = self._tables.get(table_id)
        return state if state is not None and not state.dropped else None

    def table_named(self, name: str) -> TableState | None:
        """A live table by name."""
        for state in self._tables.values():
            if state.name == name and not state.dropped:
                return state
        return None

    def tables(self) -> list[TableState]:
        """Every live table."""
        return [t for t in self._tables.values() if not t.dropped]

    async def snapshot(self, table_id: str) -> reader.TableRead | None:
        """The table's rows at its current version."""
        return await _run_in(self._reader, reader.read_snapshot, table_id)

    async def query(self, table_id: str, request: Query) -> reader.QueryPage | None:
        """A page of a query (filter, sort, selection, cursor); raises ``QueryError``."""
        return await _run_in(self._reader, reader.read_query, table_id, request)

    async def since(self, table_id: str, version: int) -> tuple[TableState, list[Change]] | None:
        """Changes after ``version`` from the op log, or None if a snapshot is needed."""
        return await _run_in(self._reader, reader.read_since, table_id, version)

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """No request is using the store and no batch is queued."""
        return self.users == 0 and self._queue.empty()

    async def close(self) -> None:
        """Commit what is queued, then close both connections. Idempotent."""
        if not self._closing:
            self._closing = True
            self._queue.put_nowait(None)
        await self._closed.wait()
        if self._checkpoint is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint
        with contextlib.suppress(Exception):
            await self._writer.close()
        with contextlib.suppress(Exception):
            await self._reader.close()
