"""Tamper-evident audit log (security pillar 4): who did what, to what, from where, when.

- ``chain``: the pure hash chain (:class:`AuditEntry`, :class:`ChainedEntry`, :func:`verify`).
- ``actions``: the audited action names (:class:`Action`).
- ``details``: keeping secrets out of the details JSON.
- ``export``: JSON Lines and CSV, and their parsers.
- ``log``: the SQLite shell (``ensure_schema``, ``append``, ``export``, ``verify_db``,
  ``purge``) over a caller's ``aiosqlite.Connection``.
- ``events``: the hub's audited events and how each is written.

A low-level package: it imports nothing of ``server.control``, ``server.store`` or
``server.hub``; they import it (``tests/audit/test_audit_layering.py``). The running hub's
audit service is ``server/hub/auditwriter.py``, its audit messages ``server/hub/audit.py``.

Exception tree::

    AuditError                    root
     ├── SecretInDetailsError     check_details found a secret (caller's fault)
     ├── AuditWriteError          append/purge failed; the transaction was rolled back
     └── AuditTamperedError       the stored chain is broken (purge refuses to erase it)
"""

from __future__ import annotations

from server.audit.actions import Action
from server.audit.chain import (
    GENESIS_HASH,
    AuditEntry,
    AuditError,
    ChainedEntry,
    Verifier,
    verify,
)
from server.audit.details import SecretInDetailsError, check_details, redact_details
from server.audit.log import (
    DEFAULT_RETENTION_DAYS,
    AuditTamperedError,
    AuditWriteError,
    Head,
    append,
    ensure_schema,
    entries,
    export,
    export_lines,
    head,
    purge,
    purge_expired,
    verify_db,
)

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "GENESIS_HASH",
    "Action",
    "AuditEntry",
    "AuditError",
    "AuditTamperedError",
    "AuditWriteError",
    "ChainedEntry",
    "Head",
    "SecretInDetailsError",
    "Verifier",
    "append",
    "check_details",
    "ensure_schema",
    "entries",
    "export",
    "export_lines",
    "head",
    "purge",
    "purge_expired",
    "redact_details",
    "verify",
    "verify_db",
]
