"""The incident report: who and what the audit logs show in a time window.

Sources, all read-only: the control audit log, the audit log of every tenant database (or
of the one tenant asked for), and the audit entries retained for deleted tenants
(``<data_dir>/audit-retained/<tenant>.jsonl``). Each entry in ``[since, until]`` is
attributed to the API keys it names (target, ``details.credential_id``, the actor's
``key:<id>`` subject) and to a tenant: the log it is in, else its ``details.tenant``, its
target or its actor's tenant, else the owner of a key it names. The summary lists the
tenants, keys, peer addresses and actions with counts; :func:`to_csv` writes one row per
entry. Nothing secret is in an audit entry, so nothing secret is in the report.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.audit import log as audit_log
from server.auth.ids import is_tenant_id
from server.control.plane import ControlPlane
from server.lifecycle.delete import RETAINED_AUDIT_DIR
from server.lifecycle.provision import open_tenant_db
from server.store.schema import tenant_path

REPORT_FORMAT = "hypertab-incident-report/1"
CSV_FIELDS = (
    "log", "tenant", "id", "ts", "time", "actor", "action", "target", "ip", "keys", "details",
)  # fmt: skip


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class ReportEntry:
    """One audit entry in the window, attributed."""

    log: str
    tenant: str | None
    id: int
    ts: float
    actor: str
    action: str
    target: str
    ip: str | None
    details: dict[str, Any]
    keys: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The entry as a JSON object."""
        return {
            "log": self.log,
            "tenant": self.tenant,
            "id": self.id,
            "ts": self.ts,
            "time": _iso(self.ts),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "ip": self.ip,
            "keys": list(self.keys),
            "details": self.details,
        }


def _attribute(log: str, log_tenant: str | None, raw: dict[str, Any], known: _Known) -> ReportEntry:
    details = raw.get("details")
    details = details if isinstance(details, dict) else {}
    target = str(raw.get("target") or "")
    actor = str(raw.get("actor") or "")
    actor_tenant, _, subject = actor.partition("/")
    keys: list[str] = []
    for value in (target, details.get("credential_id"), subject.removeprefix("key:")):
        if isinstance(value, str) and value in known.key_tenants and value not in keys:
            keys.append(value)
    tenant = log_tenant
    if tenant is None:
        # Key ids and tenant ids have the same shape: only ids that exist count.
        for candidate in (details.get("tenant"), target, actor_tenant):
            if isinstance(candidate, str) and candidate in known.names:
                tenant = candidate
                break
        else:  # e.g. a failed handshake: the key id it presented says whose
            tenant = next((known.key_tenants[k] for k in keys), None)
    ip = raw.get("ip")
    return ReportEntry(
        log=log,
        tenant=tenant,
        id=int(raw.get("id") or 0),
        ts=float(raw.get("ts") or 0.0),
        actor=actor,
        action=str(raw.get("action") or ""),
        target=target,
        ip=str(ip) if ip else None,
        details=details,
        keys=tuple(keys),
    )


@dataclass(frozen=True, slots=True)
class _Known:
    names: dict[str, str]
    key_tenants: dict[str, str]


async def _read_log(conn: Any, since: float, until: float) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async for entry in audit_log.entries(conn, since):
        if entry.ts > until:
            continue
        found.append(
            {
                "id": entry.id,
                "ts": entry.ts,
                "actor": entry.actor,
                "action": entry.action,
                "target": entry.target,
                "ip": entry.ip,
                "details": entry.details_obj(),
            }
        )
    return found


def _retained(data_dir: Path, tenant: str | None, since: float, until: float) -> list[Any]:
    directory = data_dir / RETAINED_AUDIT_DIR
    if not directory.is_dir():
        return []
    found: list[tuple[str, dict[str, Any]]] = []
    for file in sorted(directory.glob("*.jsonl")):
        owner = file.stem
        if not is_tenant_id(owner) or (tenant is not None and owner != tenant):
            continue
        for line in file.read_text(encoding="utf-8").splitlines():
            try:
                raw = json.loads(line)
            except ValueError:
                continue
            if isinstance(raw, dict) and since <= float(raw.get("ts") or 0.0) <= until:
                found.append((owner, raw))
    return found


@dataclass(slots=True)
class Report:
    """The entries in the window and their summary."""

    since: float
    until: float
    tenant_filter: str | None
    names: dict[str, str]
    entries: list[ReportEntry] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Tenants, keys, addresses and actions with counts (the JSON report)."""
        tenants: dict[str, dict[str, Any]] = {}
        keys: dict[str, dict[str, Any]] = {}
        addresses: dict[str, dict[str, Any]] = {}
        for e in self.entries:
            if e.tenant is not None:
                t = tenants.setdefault(
                    e.tenant,
                    {
                        "id": e.tenant,
                        "name": self.names.get(e.tenant),
                        "entries": 0,
                        "actions": Counter(),
                        "keys": set(),
                        "addresses": set(),
                        "first": e.ts,
                        "last": e.ts,
                    },
                )
                t["entries"] += 1
                t["actions"][e.action] += 1
                t["keys"].update(e.keys)
                if e.ip:
                    t["addresses"].add(e.ip)
                t["first"], t["last"] = min(t["first"], e.ts), max(t["last"], e.ts)
            for key in e.keys:
                k = keys.setdefault(
                    key, {"id": key, "tenant": e.tenant, "entries": 0, "actions": Counter()}
                )
                k["entries"] += 1
                k["actions"][e.action] += 1
                k["tenant"] = k["tenant"] or e.tenant
            if e.ip:
                a = addresses.setdefault(
                    e.ip, {"ip": e.ip, "entries": 0, "tenants": set(), "actions": Counter()}
                )
                a["entries"] += 1
                a["actions"][e.action] += 1
                if e.tenant:
                    a["tenants"].add(e.tenant)
        return {
            "format": REPORT_FORMAT,
            "window": {
                "since": self.since,
                "until": self.until,
                "since_time": _iso(self.since),
                "until_time": _iso(self.until),
            },
            "tenant": self.tenant_filter,
            "totals": {
                "entries": len(self.entries),
                "tenants": len(tenants),
                "keys": len(keys),
                "addresses": len(addresses),
            },
            "tenants": [_plain(t) for t in sorted(tenants.values(), key=lambda t: t["id"])],
            "keys": [_plain(k) for k in sorted(keys.values(), key=lambda k: k["id"])],
            "addresses": [
                _plain(a) for a in sorted(addresses.values(), key=lambda a: -a["entries"])
            ],
            "actions": dict(Counter(e.action for e in self.entries).most_common()),
        }

    def as_json(self) -> dict[str, Any]:
        """Summary plus every entry."""
        return {**self.summary(), "entries": [e.as_json() for e in self.entries]}


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in item.items():
        if isinstance(value, Counter):
            out[key] = dict(value.most_common())
        elif isinstance(value, set):
            out[key] = sorted(value)
        else:
            out[key] = value
    return out


def to_csv(entries: Iterable[ReportEntry]) -> str:
    """One row per entry (RFC 4180); cells that a spreadsheet would run are prefixed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    for e in entries:
        row = [
            e.log,
            e.tenant or "",
            e.id,
            e.ts,
            _iso(e.ts),
            e.actor,
            e.action,
            e.target,
            e.ip or "",
            " ".join(e.keys),
            json.dumps(e.details, sort_keys=True, ensure_ascii=False),
        ]
        writer.writerow([_cell(c) for c in row])
    return buffer.getvalue()


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


async def build_report(
    plane: ControlPlane,
    data_dir: Path,
    *,
    since: float,
    until: float,
    tenant: str | None = None,
) -> Report:
    """Read every audit log of ``data_dir`` (or the control log and one tenant's)."""
    records = await plane.list_tenants(include_deleted=True)
    report = Report(since, until, tenant, {t.id: t.name for t in records})
    known = _Known(
        report.names, {k.id: k.tenant for t in records for k in await plane.list_keys(t.id)}
    )
    async with plane.transaction() as conn:  # one consistent view of the control log
        control = await _read_log(conn, since, until)
    for raw in control:
        entry = _attribute("control", None, raw, known)
        if tenant is None or entry.tenant == tenant:
            report.entries.append(entry)
    for record in records:
        if tenant is not None and record.id != tenant:
            continue
        path = tenant_path(data_dir, record.id)
        if not path.is_file():
            continue
        conn = await open_tenant_db(path)
        try:
            rows = await _read_log(conn, since, until)
        except sqlite3.OperationalError:
            rows = []  # a database from before the audit log
        finally:
            await conn.close()
        report.entries.extend(_attribute("tenant", record.id, raw, known) for raw in rows)
    for owner, raw in _retained(data_dir, tenant, since, until):
        report.entries.append(_attribute("retained", owner, raw, known))
    report.entries.sort(key=lambda e: (e.ts, e.log, e.id))
    return report
