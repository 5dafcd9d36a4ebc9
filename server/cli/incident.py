"""``hypertab incident contain|report``: breach containment and the 72-hour report.

``contain --tenant T`` (or ``--all``) revokes every key, closes every socket on running hubs
(through ``control.db`` and the notify sockets, as ``key revoke`` does), prints one fresh
admin key per tenant (shown once), rotates data keys (and with ``--all`` the master key),
records one ``incident.contained`` audit entry with the case id, and prints what users must
do next. ``report --since WHEN`` lists the tenants, keys, addresses and actions in the audit
logs of a window, as JSON (default) or CSV.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import sys
from pathlib import Path

from server.audit.actions import Action
from server.audit.chain import AuditEntry
from server.audit.events import record_control_event
from server.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    Commands,
    UsageError,
    actor,
    add_json_flag,
    data_dir,
    data_dir_parent,
    iso,
    issued_json,
    now,
    print_json,
    resolve_tenant,
)
from server.cli.lifecycle import lifecycle_of
from server.incident.contain import Containment, contain, next_steps
from server.incident.report import build_report, to_csv

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
CASE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def register(commands: Commands) -> None:
    """Add the ``incident`` group."""
    group = commands.add_parser("incident", help="incident response: contain, report")
    sub = group.add_subparsers(dest="incident_command", metavar="ACTION", required=True)
    parent = data_dir_parent()

    cont = sub.add_parser(
        "contain",
        parents=[parent],
        help="revoke every key, close every socket, reissue admin keys, rotate keys",
        description="Contain a breach: every key of the tenant (or of every tenant) is "
        "revoked and its sockets closed at once, a new admin key is issued and shown once, "
        "the data key is rotated (secrets re-encrypted); --all also rotates the master key. "
        "One incident entry with a case id goes to the control audit log.",
    )
    which = cont.add_mutually_exclusive_group(required=True)
    which.add_argument("--tenant", metavar="T", help="tenant id or name")
    which.add_argument("--all", action="store_true", help="every live tenant, and the master key")
    cont.add_argument("--case", metavar="ID", help="case id to record (default: a new one)")
    add_json_flag(cont)
    cont.set_defaults(handler=contain_command)

    rep = sub.add_parser(
        "report",
        parents=[parent],
        help="tenants, keys, addresses and actions in the audit logs of a window",
    )
    rep.add_argument(
        "--since", required=True, metavar="WHEN", help="ISO 8601 time, or a duration ago: 72h, 7d"
    )
    rep.add_argument("--until", metavar="WHEN", help="end of the window (default: now)")
    rep.add_argument("--tenant", metavar="T", help="only this tenant (id or name)")
    rep.add_argument("--format", choices=("json", "csv"), default="json", help="json (default)")
    rep.add_argument("--out", type=Path, metavar="FILE", help="write here (0600), not stdout")
    rep.set_defaults(handler=report_command)


def parse_when(text: str, at: float) -> float:
    """``72h``/``7d``/``30m``/``90s`` ago, or an ISO 8601 date or time (UTC if no zone)."""
    match = _RELATIVE.match(text.strip())
    if match:
        return at - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{text!r} is neither an ISO 8601 time nor a duration like 72h") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def _print_containment(result: Containment, steps: list[str]) -> None:
    print(f"incident {result.case}: contained {len(result.tenants)} tenant(s)")
    for item in result.tenants:
        print(f"tenant {item.tenant.id} ({item.tenant.name}): {len(item.revoked)} key(s) revoked")
        if item.data_key_version is not None:
            print(
                f"  data key version {item.data_key_version}; "
                f"{item.secrets_reencrypted} secret(s) re-encrypted"
            )
        for error in item.errors:
            print(f"  NOT DONE: {error}")
        if item.new_key is not None:
            print(f"  new admin key {item.new_key.record.id} (shown once):")
            print(f"    {item.new_key.secret}")
    if result.master_key is not None:
        print(f"master key {result.master_key} is now current")
    for note in result.notes:
        print(f"note: {note}")
    for error in result.errors:
        print(f"NOT DONE: {error}")
    print("next steps:")
    for number, step in enumerate(steps, 1):
        print(f"  {number}. {step}")
    sys.stdout.flush()


def contain_command(args: argparse.Namespace) -> int:
    """``incident contain --tenant T | --all``."""
    if args.case is not None and not CASE_RE.match(args.case):
        raise UsageError("--case is 1 to 64 letters, digits, '.', '_' or '-'")
    jwt = bool(os.environ.get("HYPERTAB_JWT_SECRET") or os.environ.get("HYPERTAB_JWT_JWKS"))

    async def run() -> Containment:
        async with lifecycle_of(data_dir(args)) as (plane, lifecycle):
            if args.all:
                tenants = await plane.list_tenants()
            else:
                tenants = [await resolve_tenant(plane, args.tenant)]
            return await contain(
                lifecycle,
                tenants,
                everything=args.all,
                now=now(),
                actor=actor(),
                case=args.case,
                jwt_configured=jwt,
            )

    result = asyncio.run(run())
    steps = next_steps(result, jwt_configured=jwt)
    failed = bool(result.errors) or any(
        item.new_key is None for item in result.tenants
    )  # keys not revoked: the part that matters most
    if args.json:
        print_json(
            {
                "case": result.case,
                "at": iso(result.at),
                "scope": result.scope,
                "tenants": [
                    {
                        **item.details(),
                        "key": issued_json(item.new_key, result.at) if item.new_key else None,
                    }
                    for item in result.tenants
                ],
                "master_key": result.master_key,
                "notes": result.notes,
                "errors": result.errors,
                "next_steps": steps,
            }
        )
    else:
        _print_containment(result, steps)
    return EXIT_FAILURE if failed else EXIT_OK


def report_command(args: argparse.Namespace) -> int:
    """``incident report --since WHEN [--until WHEN] [--tenant T] [--format json|csv]``."""
    at = now()
    since = parse_when(args.since, at)
    until = parse_when(args.until, at) if args.until else at
    if until < since:
        raise UsageError("--until is before --since")

    async def run() -> str:
        directory = data_dir(args)
        async with lifecycle_of(directory) as (plane, _):
            tenant = (await resolve_tenant(plane, args.tenant)).id if args.tenant else None
            report = await build_report(plane, directory, since=since, until=until, tenant=tenant)
            entry = AuditEntry(
                at,
                actor(),
                Action.EXPORT,
                target="incident_report",
                details={"since": since, "until": until, "tenant": tenant, "format": args.format},
            )
            await record_control_event(plane, entry)  # reading the audit logs is audited
        if args.format == "csv":
            return to_csv(report.entries)
        return json.dumps(report.as_json(), sort_keys=True, indent=1) + "\n"

    text = asyncio.run(run())
    if args.out is not None:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return EXIT_OK
