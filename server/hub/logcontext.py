"""Connection log lines name their tenant and connection, not ``<weakproxy at 0x…>``.

websockets attaches the connection object to every record it logs for a connection (the
``websocket`` extra field, a ``weakref.proxy``); a JSON formatter can only print its repr.
:class:`ConnectionFields` replaces it with ``connection`` (the connection's UUID, the same
id as the burst-limit key), ``tenant`` and ``credential`` (once the handshake verified a
principal) and ``ip`` (the client address, through a trusted proxy when there is one).
"""

from __future__ import annotations

import logging


def connection_fields(conn: object) -> dict[str, str]:
    """``connection``, ``tenant``, ``credential`` and ``ip`` of a connection, as log fields
    (``extra=``); ids only, never the credential itself."""
    fields: dict[str, str] = {}
    try:
        fields["connection"] = str(conn.id)  # type: ignore[attr-defined]
        principal = getattr(conn, "principal", None)
        if principal is not None:
            fields["tenant"] = principal.tenant
            fields["credential"] = principal.credential_id
        ip = getattr(conn, "client_ip", None)
        if ip is not None:
            fields["ip"] = ip
    except ReferenceError:  # the connection is gone; its id cannot be read any more
        pass
    return fields


class ConnectionFields(logging.Filter):
    """A logger filter: the ``websocket`` field becomes tenant, credential and connection ids."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; always keeps it."""
        conn = record.__dict__.pop("websocket", None)
        if conn is not None:
            record.__dict__.update(connection_fields(conn))
        return True


def name_connections(logger: logging.Logger) -> logging.Logger:
    """Install :class:`ConnectionFields` on ``logger`` once; returns it."""
    if not any(isinstance(f, ConnectionFields) for f in logger.filters):
        logger.addFilter(ConnectionFields())
    return logger
