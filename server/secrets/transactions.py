"""The transaction contract shared by the data key store and the secret store.

Every mutating method takes ``commit: bool = True``:

* ``commit=True``: the call is its own transaction. It opens ``BEGIN IMMEDIATE`` (so its
  reads and writes are atomic against other connections), commits on success and rolls back
  on error. Calling it while the connection already has an open transaction raises
  :class:`SecretsUsageError`: committing would silently commit the caller's pending work.
* ``commit=False``: the call joins the caller's transaction and never commits or rolls back;
  the caller adds its own rows (e.g. an audit entry) and then commits, or rolls back on
  error. Under the default ``sqlite3`` transaction handling the first write opens the
  transaction implicitly; with ``isolation_level=None`` (autocommit) the caller must have
  issued ``BEGIN`` first, else each statement would commit on its own and the call is
  refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from server.secrets.errors import SecretsUsageError
from server.store.asyncconn import AsyncConnection


@asynccontextmanager
async def write_transaction(conn: AsyncConnection, *, commit: bool) -> AsyncIterator[None]:
    """Run the body under the ``commit`` contract described in the module docstring."""
    if not commit:
        if conn.isolation_level is None and not conn.in_transaction:
            raise SecretsUsageError(
                "commit=False on an autocommit connection needs an explicit BEGIN first"
            )
        yield
        return
    if conn.in_transaction:
        raise SecretsUsageError(
            "commit=True inside an open transaction would commit the caller's work; "
            "pass commit=False and commit yourself"
        )
    await conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        await conn.rollback()
        raise
    await conn.commit()


@asynccontextmanager
async def secure_delete(conn: AsyncConnection) -> AsyncIterator[None]:
    """Zero the bytes of rows deleted or overwritten in the body (``PRAGMA secure_delete``).

    Scoped to the body so the connection's other users keep their own setting. Old page
    images can still sit in the WAL until :func:`truncate_wal` runs after the commit.
    """
    async with conn.execute("PRAGMA secure_delete") as cursor:
        row = await cursor.fetchone()
    previous = int(row[0]) if row is not None else 0
    await conn.execute("PRAGMA secure_delete = 1")
    try:
        yield
    finally:
        await conn.execute(f"PRAGMA secure_delete = {1 if previous else 0}")


async def truncate_wal(conn: AsyncConnection) -> bool:
    """Checkpoint and truncate the WAL so pages overwritten under secure_delete are gone.

    Must run outside a transaction (after the commit). A no-op for non-WAL databases. If
    a reader holds an old snapshot the checkpoint cannot finish: returns ``False`` and the
    caller should retry later; ``True`` when the WAL was checkpointed and truncated.
    """
    if conn.in_transaction:
        raise SecretsUsageError("truncate_wal must run after the transaction committed")
    async with conn.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cursor:
        row = await cursor.fetchone()
    # Row is (busy, wal frames, checkpointed frames); busy=1 means a reader blocked it.
    return row is None or int(row[0]) == 0
