"""The audit log's hash chain: canonical encoding, entry hashes, verification. Pure.

How it works
------------
Entries get consecutive ids 1, 2, 3, ... Each stored entry carries ``prev_hash`` (the hash of
the entry before it; for the first entry, the chain's *anchor*) and its own hash::

    hash = SHA-256( prev_hash || 0x0A || canonical(id, ts, actor, action, target, ip, details) )

``canonical`` is the UTF-8 of a compact JSON array of those seven fields in that order, where
``details`` is the already-canonical JSON text of the details object (sorted keys, no spaces).
Because the id is hashed, and each hash covers the previous one:

- an edited entry no longer matches its own hash;
- a deleted entry leaves a gap in the ids (and the next entry's ``prev_hash`` dangling);
- reordered entries (contents moved between ids) no longer match their hashes.

:func:`verify` walks the entries in id order from an anchor and returns the id of the first
entry that breaks the chain, or ``None``. It cannot see the newest entries being cut off:
the store keeps the head (last id and hash) apart and checks it too, and publishing the head
elsewhere from time to time (see ``docs/audit.md``) makes a wholesale rewrite evident.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS_HASH = "0" * 64
"""The anchor of a chain that has never been purged."""


class AuditError(Exception):
    """Root of the audit package's exceptions."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What happened, as a caller records it (before it is numbered and chained).

    ``actor``: who (a principal's ``tenant/subject``, ``system``, or ``anonymous``);
    ``target``: what it was done to (a key id, table id, secret name, tenant id);
    ``ip``: the peer address, or ``None``; ``details``: JSON-able, never secret.
    """

    ts: float
    actor: str
    action: str
    target: str = ""
    ip: str | None = None
    details: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ChainedEntry:
    """A stored entry: an :class:`AuditEntry` numbered and linked into the chain."""

    id: int
    ts: float
    actor: str
    action: str
    target: str
    ip: str | None
    details: str  # canonical JSON text, exactly as hashed
    prev_hash: str
    hash: str

    def details_obj(self) -> dict[str, Any]:
        """The details as a dict."""
        value: dict[str, Any] = json.loads(self.details)
        return value


def canonical_json(value: object) -> str:
    """The one JSON text of ``value``: sorted keys, no whitespace, no NaN or infinity."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise AuditError(f"details are not canonical JSON: {exc}") from exc


def canonical(
    id: int, ts: float, actor: str, action: str, target: str, ip: str | None, details: str
) -> bytes:
    """The bytes hashed for one entry (``details`` is already canonical JSON text)."""
    if not math.isfinite(ts):
        raise AuditError("an audit timestamp must be a finite number")
    return canonical_json([id, ts, actor, action, target, ip, details]).encode()


def entry_hash(
    prev_hash: str,
    id: int,
    ts: float,
    actor: str,
    action: str,
    target: str,
    ip: str | None,
    details: str,
) -> str:
    """The hex SHA-256 linking an entry to ``prev_hash``."""
    body = canonical(id, ts, actor, action, target, ip, details)
    return hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()


def link(prev_hash: str, id: int, entry: AuditEntry) -> ChainedEntry:
    """Number ``entry`` as ``id`` and chain it after ``prev_hash``."""
    details = canonical_json(dict(entry.details or {}))
    ip = entry.ip or None  # one spelling of "no address", so CSV round-trips
    return ChainedEntry(
        id=id,
        ts=entry.ts,
        actor=entry.actor,
        action=str(entry.action),
        target=entry.target,
        ip=ip,
        details=details,
        prev_hash=prev_hash,
        hash=entry_hash(
            prev_hash,
            id,
            entry.ts,
            entry.actor,
            str(entry.action),
            entry.target,
            ip,
            details,
        ),
    )


def recompute(entry: ChainedEntry) -> str:
    """The hash ``entry`` should carry given its fields and its ``prev_hash``."""
    return entry_hash(
        entry.prev_hash,
        entry.id,
        entry.ts,
        entry.actor,
        entry.action,
        entry.target,
        entry.ip,
        entry.details,
    )


class Verifier:
    """Checks a chain one entry at a time (for streams too large to hold at once).

    ``anchor`` is the hash the first entry must link to and ``first_id`` the id it must
    have; ``None`` for either takes the first entry's own (to check a partial export).
    """

    __slots__ = ("_expected_id", "_expected_prev", "broken", "last_hash", "last_id")

    def __init__(self, anchor: str | None = GENESIS_HASH, first_id: int | None = 1) -> None:
        self._expected_prev = anchor
        self._expected_id = first_id
        self.broken: int | None = None
        self.last_id: int | None = None
        self.last_hash: str | None = None

    def feed(self, entry: ChainedEntry) -> int | None:
        """Check the next entry; the first broken id so far (sticky), or ``None``."""
        if self.broken is not None:
            return self.broken
        if self._expected_id is not None and entry.id != self._expected_id:
            self.broken = self._expected_id
        elif (
            self._expected_prev is not None and entry.prev_hash != self._expected_prev
        ) or not _hash_holds(entry):
            self.broken = entry.id
        else:
            self._expected_prev = self.last_hash = entry.hash
            self.last_id = entry.id
            self._expected_id = entry.id + 1
        return self.broken


def _hash_holds(entry: ChainedEntry) -> bool:
    try:
        return recompute(entry) == entry.hash
    except AuditError:  # a stored ts of NaN, say: that entry was edited
        return False


def verify(
    entries: Iterable[ChainedEntry],
    *,
    anchor: str | None = GENESIS_HASH,
    first_id: int | None = 1,
) -> int | None:
    """The id of the first entry that breaks the chain, or ``None`` when all hold.

    ``entries`` must come in id order, as stored; ``anchor`` and ``first_id`` as for
    :class:`Verifier`. A missing entry is reported by its id (the id the chain expected
    next), an edited or moved one by its own id.
    """
    verifier = Verifier(anchor, first_id)
    for entry in entries:
        if verifier.feed(entry) is not None:
            break
    return verifier.broken
