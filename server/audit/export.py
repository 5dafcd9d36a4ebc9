"""Export formats of the audit log, JSON Lines and CSV, and their parsers. Pure.

Both carry every stored field, ``prev_hash`` and ``hash`` included, so whoever receives an
export can check it with :func:`server.audit.chain.verify` (``anchor=None, first_id=None``
for an export that starts after the first entry), or with no code of ours at all from the
rules in docs/audit.md ("Verifying an export"). In JSON Lines ``details`` is an object; in
CSV it is the canonical JSON text, exactly as hashed. ``ts`` is written as the same text in
both (Python's ``repr`` of the float, which is also the text hashed). A missing ``ip`` is
JSON ``null``, and in CSV the cell ``null`` (an address never reads so); the empty cell is
the empty string, so every value round-trips.

CSV cells are written as stored, so the file verifies; a cell starting with ``=``, ``+``,
``-`` or ``@`` is a formula to a spreadsheet program. Import the file as text rather than
opening it directly (docs/audit.md).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Literal

from server.audit.chain import AuditError, ChainedEntry, canonical_json
from server.auth.principal import Plan

EXPORT_PLANS = frozenset({Plan.PRO, Plan.TEAM, Plan.ENTERPRISE})
"""Plans that may export their audit log (over the wire and with the CLI)."""

Format = Literal["jsonl", "csv"]

CSV_NULL = "null"
"""The CSV cell of a missing ``ip`` (the empty cell is the empty string)."""

FIELDS = ("id", "ts", "actor", "action", "target", "ip", "details", "prev_hash", "hash")


def jsonl_line(entry: ChainedEntry) -> str:
    """One entry as a JSON Lines line, newline included."""
    record = {
        "id": entry.id,
        "ts": entry.ts,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "ip": entry.ip,
        "details": entry.details_obj(),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }
    return json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"


def csv_header() -> str:
    """The CSV header line, newline included."""
    return _csv_row(FIELDS)


def csv_line(entry: ChainedEntry) -> str:
    """One entry as a CSV line (RFC 4180 quoting), newline included."""
    return _csv_row(
        (
            str(entry.id),
            repr(entry.ts),  # repr: the shortest text that reads back as the same float
            entry.actor,
            entry.action,
            entry.target,
            CSV_NULL if entry.ip is None else entry.ip,
            entry.details,
            entry.prev_hash,
            entry.hash,
        )
    )


def _csv_row(cells: Iterable[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(list(cells))
    return buf.getvalue()


def render(entries: Iterable[ChainedEntry], fmt: Format) -> str:
    """All of ``entries`` in ``fmt``."""
    if fmt == "jsonl":
        return "".join(jsonl_line(e) for e in entries)
    if fmt == "csv":
        return csv_header() + "".join(csv_line(e) for e in entries)
    raise AuditError(f"unknown export format {fmt!r}")


def parse(text: str, fmt: Format) -> list[ChainedEntry]:
    """Entries back from an export (raises :class:`AuditError` on a malformed one)."""
    try:
        if fmt == "jsonl":
            return [_from_json(json.loads(line)) for line in text.splitlines() if line.strip()]
        if fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(text)))
            return [
                ChainedEntry(
                    id=int(r["id"]),
                    ts=float(r["ts"]),
                    actor=r["actor"],
                    action=r["action"],
                    target=r["target"],
                    ip=None if r["ip"] == CSV_NULL else r["ip"],
                    details=r["details"],
                    prev_hash=r["prev_hash"],
                    hash=r["hash"],
                )
                for r in rows
            ]
    except (ValueError, KeyError, TypeError) as exc:
        raise AuditError(f"malformed {fmt} audit export: {exc}") from exc
    raise AuditError(f"unknown export format {fmt!r}")


def _from_json(record: dict[str, object]) -> ChainedEntry:
    ip = record["ip"]
    return ChainedEntry(
        id=int(str(record["id"])),
        ts=float(str(record["ts"])),
        actor=str(record["actor"]),
        action=str(record["action"]),
        target=str(record["target"]),
        ip=None if ip is None else str(ip),
        details=canonical_json(record["details"]),
        prev_hash=str(record["prev_hash"]),
        hash=str(record["hash"]),
    )
