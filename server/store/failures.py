"""What a failed tenant-database write tells the client, and what it tells the operator.

A write SQLite refuses is answered with a code that says whether retrying can help:

- ``store_conflict`` (not temporary): a constraint failed against what the file holds, for
  example a version another process already committed (two processes writing one data
  directory). The server's view of the tenant no longer matches its file; the same batch
  will fail again until an operator steps in.
- ``store_failed`` (not temporary): the database cannot be written at all: disk full,
  read-only file or directory, I/O error, corruption.
- ``internal`` (temporary): anything else, e.g. the file was busy; a retry can succeed.

Every such failure is logged at ERROR with its cause: SQLite's error name
(``SQLITE_CONSTRAINT_PRIMARYKEY``, ``SQLITE_FULL``...) and never the batch's data, the
error's message (which can quote SQL) or a traceback.
"""

from __future__ import annotations

import logging
import sqlite3

from server.engine.batch import BatchError

log = logging.getLogger(__name__)

# Primary result codes (the low byte of an extended code), from sqlite3.h.
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB, _PERM = (
    5, 6, 8, 10, 11, 13, 14, 26, 3
)  # fmt: skip
_BROKEN_STORAGE = frozenset({_READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB, _PERM})


def cause_of(exc: BaseException) -> str:
    """A loggable cause: SQLite's error name when there is one, else the exception's type."""
    name = getattr(exc, "sqlite_errorname", None)
    return name if isinstance(name, str) and name else type(exc).__name__


def batch_error(exc: BaseException) -> BatchError:
    """The wire error for a batch that ``exc`` kept from committing."""
    if isinstance(exc, sqlite3.IntegrityError):
        return BatchError(
            "store_conflict", "the tenant database refused the write (constraint failed)"
        )
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.Error) and isinstance(code, int) and code & 0xFF in _BROKEN_STORAGE:
        return BatchError("store_failed", "the tenant database cannot be written")
    return BatchError("internal", "the store could not apply it")


def log_failure(tenant: str, what: str, exc: BaseException, batches: int) -> BatchError:
    """Log a failed write (cause only) and return the error to answer it with."""
    error = batch_error(exc)
    log.error(
        "tenant write failed (%s): %s; answered %s",
        what,
        cause_of(exc),
        error.code,
        extra={"tenant": tenant, "cause": cause_of(exc), "code": error.code, "batches": batches},
    )
    return error
