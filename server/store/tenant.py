"""A tenant's store: its SQLite file, its single writer and its read connection.

One door into the writer: every write is a job on the writer's queue, run in order by the
one writer task, on the writer's own connection in the writer's own thread
(:class:`~server.store.sqlthread.SqliteThread`):

- a batch (:meth:`TenantStore.submit`): batches queued while a transaction runs are
  committed together (group commit, ``server/store/writer.py``); each batch's future
  resolves only after COMMIT, and ``on_commit`` hands the committed changes, in version
  order, to the hub before the acks are sent;
- a function (:meth:`TenantStore.run_exclusive`): ``fn(sqlite3_connection, *args)`` run in
  the writer thread between two group commits (custom functions, the webhook outbox);
- a turn (:meth:`TenantStore.exclusive`): async feature code (secrets, audit entries,
  webhooks) gets a :class:`~server.store.asyncconn.JobConnection` whose statements run in
  the writer thread until the turn ends; then it refuses every call.

No feature holds the writer's connection outside its job. Reads go through a second,
read-only connection so snapshots never wait for writes.
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

from protocol.messages import Change, Query
from protocol.ops import Op
from server.audit.log import ensure_schema as ensure_audit_schema
from server.engine.batch import BatchError, FormulaCheck
from server.engine.catalog import TableState
from server.store import reader
from server.store.asyncconn import JobConnection
from server.store.catalog import data_version
from server.store.failures import log_failure
from server.store.query import install_functions
from server.store.schema import Durability, checkpoint, configure
from server.store.sqlthread import SqliteThread
from server.store.writer import BatchOutcome, BatchRequest, FormulaRecompute, commit_group

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 32
"""Commits between WAL checkpoints (run on the read connection, off the commit path)."""

MAX_GROUP = 512
"""Most batches in one transaction: bounds the latency one group adds to the next."""

WRITER_THREAD = "hypertab-tenant-writer"
READER_THREAD = "hypertab-tenant-reader"
"""Names of a store's two connection threads."""

OnCommit = Callable[[str, str, list[Change]], None]
"""``on_commit(tenant, table, changes)``: called on the event loop right after COMMIT."""

T = TypeVar("T")


class StoreError(Exception):
    """Root of the store's exceptions: the store cannot serve the request."""


class StoreClosed(StoreError):
    """The store is closed or closing."""


class _Batch:
    __slots__ = ("future", "request")

    def __init__(self, request: BatchRequest, future: asyncio.Future[BatchOutcome]) -> None:
        self.request = request
        self.future = future


class _Call:
    """``fn(conn, *args)`` in the writer thread; ``then(result)`` on the loop, before the
    writer's next job."""

    __slots__ = ("args", "fn", "future", "then")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        future: asyncio.Future[Any],
        then: Callable[[Any], None] | None = None,
    ) -> None:
        self.fn = fn
        self.args = args
        self.future = future
        self.then = then


class _Turn:
    """An async feature's turn on the writer: from ``started`` until ``done``."""

    __slots__ = ("done", "started")

    def __init__(self, started: asyncio.Future[JobConnection]) -> None:
        self.started = started
        self.done = asyncio.Event()


class _Stop:
    """Queued by :meth:`TenantStore.close`: the writer ends after the jobs before it."""

    __slots__ = ()


_Job = _Batch | _Call | _Turn | _Stop


def _call_job(conn: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    try:
        return fn(conn, *args)
    finally:
        if conn.in_transaction:  # the job's own bug: never let it hold the next group
            conn.rollback()


def _rollback_open(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.rollback()


def _catalog_if_changed(
    conn: sqlite3.Connection, seen: int
) -> tuple[int, dict[str, TableState], int] | None:
    version = data_version(conn)
    if version == seen:
        return None
    tables, next_sql = reader.load_catalog(conn)
    return version, tables, next_sql


def _load_state(conn: sqlite3.Connection) -> tuple[int, dict[str, TableState], int]:
    seen = data_version(conn)  # before the catalog: a commit between costs one re-read
    tables, next_sql = reader.load_catalog(conn)
    return seen, tables, next_sql


def _open_reader(conn: sqlite3.Connection, durability: Durability) -> None:
    configure(conn, durability, False)
    install_functions(conn)


class TenantStore:
    """One tenant's database. Create with :meth:`open`; close with :meth:`close`."""

    def __init__(
        self,
        tenant: str,
        writer: SqliteThread,
        readers: SqliteThread,
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
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._closing = False
        self._closed = asyncio.Event()
        self._checkpoint: asyncio.Task[None] | None = None
        self._task = asyncio.get_running_loop().create_task(self._run())
        self.users = 0
        self.last_used = time.monotonic()
        self.commits = 0
        self._seen = 0
        """``PRAGMA data_version`` when the catalog was last read: another hub process
        writing this database changes it, and the catalog is read again."""
        self._hooked: bool | None = None
        """Whether the tenant has a live webhook, as the last group commit read it; None
        after any other job on the writer (which may have added or removed one)."""

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
        writer = await SqliteThread.open(path, WRITER_THREAD)
        readers: SqliteThread | None = None
        try:
            await writer.call(configure, durability, True)
            job = JobConnection(writer)
            await ensure_audit_schema(job)  # the tenant's audit log (server/audit/events.py)
            job.end()
            seen, tables, next_sql = await writer.call(_load_state)
            readers = await SqliteThread.open(path, READER_THREAD)
            await readers.call(_open_reader, durability)
        except BaseException:
            await writer.close()
            if readers is not None:
                await readers.close()
            raise
        store = cls(tenant, writer, readers, tables, next_sql, on_commit, check_formula, recompute)
        store._seen = seen
        return store

    # --- writes: jobs on the writer's queue ----------------------------------------------

    def submit(
        self, table: str, client: str, op: str, ops: list[Op], by: str
    ) -> asyncio.Future[BatchOutcome]:
        """Queue a batch; the future resolves once it is committed (or refused)."""
        if self._closing:
            raise StoreClosed("store is closing")
        future: asyncio.Future[BatchOutcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Batch(BatchRequest(table, client, op, ops, by), future))
        return future

    async def apply(self, table: str, client: str, op: str, ops: list[Op], by: str) -> BatchOutcome:
        """Queue a batch and wait until it is committed (or refused)."""
        return await self.submit(table, client, op, ops, by)

    async def run_exclusive(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(sqlite3_connection, *args)`` in the writer thread as a job of its own,
        between two group commits. The connection is in autocommit mode: ``BEGIN``
        explicitly; a transaction ``fn`` leaves open is rolled back."""
        if self._closing:
            raise StoreClosed("store is closing")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Call(fn, args, future))
        return await future

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[JobConnection]:
        """A turn on the writer for async feature code that writes its own tables (secrets,
        audit, webhooks) in its own transactions: waits for the writer's queue to reach
        it, then yields a :class:`JobConnection` on the writer's connection, valid until
        the block ends. Keep it short: batches queued meanwhile wait. The connection is in
        autocommit mode: ``BEGIN`` explicitly; a transaction left open is rolled back.
        """
        if self._closing:
            raise StoreClosed("store is closing")
        turn = _Turn(asyncio.get_running_loop().create_future())
        self._queue.put_nowait(turn)
        try:
            conn = await turn.started
        except BaseException:
            turn.started.cancel()  # not reached yet: the writer skips the turn
            turn.done.set()  # reached while we were being cancelled: hand it back
            raise
        try:
            yield conn
        finally:
            conn.end()  # at once: the turn is over for its holder, not when the writer resumes
            turn.done.set()

    async def refresh(self) -> None:
        """Re-read the catalog if another hub process changed the database since (one
        job, one thread hop when it did not): for lookups that missed in a stale catalog."""
        if self._closing:
            raise StoreClosed("store is closing")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Call(_catalog_if_changed, (self._seen,), future, self._swap))
        await future

    def _swap(self, found: tuple[int, dict[str, TableState], int] | None) -> None:
        if found is not None:
            self._seen, self._tables, self._next_sql = found
            self._hooked = None

    # --- the writer -----------------------------------------------------------------------

    async def _run(self) -> None:
        queue = self._queue
        held: _Job | None = None  # taken from the queue while grouping, runs next
        while True:
            job = held if held is not None else await queue.get()
            held = None
            if isinstance(job, _Stop):
                break
            if isinstance(job, _Batch):
                jobs = [job]
                while not queue.empty() and len(jobs) < MAX_GROUP:
                    more = queue.get_nowait()
                    if not isinstance(more, _Batch):
                        held = more
                        break
                    jobs.append(more)
                await self._commit(jobs)
            elif isinstance(job, _Call):
                await self._call(job)
            else:
                await self._turn(job)
        self._closed.set()

    async def _call(self, job: _Call) -> None:
        if job.future.done():  # the caller gave up waiting
            return
        self._hooked = None
        try:
            result = await self._writer.call(_call_job, job.fn, job.args)
        except Exception as exc:
            if not job.future.done():
                job.future.set_exception(exc)
            return
        if job.then is not None:
            job.then(result)
        if not job.future.done():
            job.future.set_result(result)

    async def _turn(self, turn: _Turn) -> None:
        if turn.started.done():  # cancelled before its turn came
            return
        self._hooked = None
        conn = JobConnection(self._writer)
        turn.started.set_result(conn)
        try:
            await turn.done.wait()
        finally:
            conn.end()
            if conn.in_transaction:
                with contextlib.suppress(Exception):
                    await self._writer.call(_rollback_open)

    async def _commit(self, jobs: list[_Batch]) -> None:
        try:
            result = await self._writer.call(
                commit_group,
                self._tables,
                self._next_sql,
                [job.request for job in jobs],
                time.time(),
                self._check_formula,
                self._recompute,
                self._seen,
                self._hooked,
            )
        except sqlite3.Error as exc:
            # The whole group failed (BEGIN or COMMIT refused: disk full, read-only file...).
            error = log_failure(self.tenant, "group commit", exc, len(jobs))
            self._hooked = None
            self._fail(jobs, error)
            return
        except Exception:
            log.exception("group commit failed for tenant store")  # a bug of ours
            self._hooked = None
            self._fail(jobs, BatchError("internal", "the store failed to commit"))
            return
        for outcome in result.outcomes:
            if outcome.failure is not None:
                log_failure(self.tenant, "batch", outcome.failure, 1)
        if result.catalog is not None:  # another process wrote: its tables and versions
            self._tables = result.catalog
        self._seen = result.data_version
        self._hooked = result.hooked
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
    def _fail(jobs: list[_Batch], error: BatchError) -> None:
        for job in jobs:
            if not job.future.done():
                job.future.set_result(BatchOutcome(error=error))

    async def _run_checkpoint(self) -> None:
        try:
            await self._reader.call(checkpoint)
        except Exception as exc:  # the next one retries; the WAL only grows meanwhile
            log.warning("checkpoint failed (%s)", type(exc).__name__)
        finally:
            self._checkpoint = None

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
        return await self._reader.call(reader.read_snapshot, table_id)

    async def query(self, table_id: str, request: Query) -> reader.QueryPage | None:
        """A page of a query (filter, sort, selection, cursor); raises ``QueryError``."""
        return await self._reader.call(reader.read_query, table_id, request)

    async def versions(self) -> dict[str, int]:
        """Each table's committed version in the database (by any process), by table id."""
        return await self._reader.call(reader.read_versions)

    async def since(self, table_id: str, version: int) -> tuple[TableState, list[Change]] | None:
        """Changes after ``version`` from the op log, or None if a snapshot is needed."""
        return await self._reader.call(reader.read_since, table_id, version)

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """No request is using the store and no job is queued."""
        return self.users == 0 and self._queue.empty()

    async def close(self) -> None:
        """Run what is queued (batches commit), then close both connections. Idempotent."""
        if not self._closing:
            self._closing = True
            self._queue.put_nowait(_Stop())
        await self._closed.wait()
        if self._checkpoint is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint
        with contextlib.suppress(Exception):
            await self._writer.close()
        with contextlib.suppress(Exception):
            await self._reader.close()
