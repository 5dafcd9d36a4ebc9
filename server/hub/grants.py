"""Narrowing live connections when their API key's grants shrink (``key update``).

How it works
------------
``ControlPlane.update_key_scopes`` commits the narrower scopes and publishes a ``GRANTS``
event on the revocation bus; other processes hear it through Redis or control.db's watcher,
exactly like a revocation. Each hub then re-reads the key (the event says only *which* key:
the database is the truth) and narrows every open session of it with :func:`narrow`:

- the session's principal keeps only the grants the key still has (an intersection, so
  a late or duplicated event can never widen anything);
- subscriptions to tables it may no longer read are dropped at once (no further changes
  are sent for them);
- the client is told with an unrequested ``grants_changed`` message.

Every later message is authorized against the narrowed principal. The periodic recheck
(``HypertabServer.recheck``) re-reads the grants of every open API-key session too, the
safety net for an event lost while Redis was away.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING

from server.auth.principal import Principal, Scope

if TYPE_CHECKING:
    from server.hub.session import Session


def narrowed(
    principal: Principal, scopes: frozenset[Scope], tables: frozenset[str] | None
) -> Principal:
    """``principal`` limited to ``scopes`` and ``tables`` (never widened). Pure."""
    if tables is None:
        new_tables = principal.tables
    elif principal.tables is None:
        new_tables = tables
    else:
        new_tables = principal.tables & tables
    return dataclasses.replace(principal, scopes=principal.scopes & scopes, tables=new_tables)


def narrow(session: Session, scopes: frozenset[Scope], tables: frozenset[str] | None) -> bool:
    """Narrow ``session`` to the key's current grants; whether anything changed."""
    new = narrowed(session.principal, scopes, tables)
    if new == session.principal:
        return False
    session.narrow(new)
    return True


def narrow_all(
    conns: Iterable[object], scopes: frozenset[Scope], tables: frozenset[str] | None
) -> int:
    """:func:`narrow` every session among ``conns`` (registry entries); how many changed."""
    from server.hub.session import Session  # the registry holds sessions; avoids a cycle

    return sum(narrow(c, scopes, tables) for c in conns if isinstance(c, Session))
