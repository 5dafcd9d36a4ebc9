"""``hypertab alerts list|deliver|retry|test``: the operator alert outbox (docs/alerts.md).

A running hub delivers alerts by itself within a fraction of a second; ``deliver`` runs one
delivery round from here (no hub running, or to see an error at once), ``retry`` puts
alerts that failed past the retry bound back in the queue, ``test`` raises a ``test``
alert through the whole path (audit entry, outbox, sinks).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from server.alerts import outbox
from server.alerts.config import AlertConfig, AlertConfigError
from server.alerts.dispatcher import AlertDispatcher, open_connection
from server.alerts.events import audit_chain_broken, record
from server.alerts.rules import Alert
from server.audit.actions import Action
from server.audit.chain import AuditEntry
from server.cli.common import (
    EXIT_OK,
    CliError,
    Commands,
    actor,
    add_json_flag,
    config_parent,
    configured_environ,
    control_plane,
    data_dir,
    data_dir_parent,
    iso,
    now,
    print_json,
    table,
)


def register(commands: Commands) -> None:
    """Add the ``alerts`` group."""
    group = commands.add_parser("alerts", help="operator alerts: list, deliver, retry, test")
    sub = group.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    parents = [data_dir_parent(), config_parent()]

    listing = sub.add_parser("list", parents=parents, help="the newest alerts and their state")
    state = listing.add_mutually_exclusive_group()
    state.add_argument("--failed", action="store_true", help="only alerts given up")
    state.add_argument("--pending", action="store_true", help="only alerts not yet delivered")
    listing.add_argument("--limit", type=int, default=100, metavar="N", help="at most N (100)")
    add_json_flag(listing)
    listing.set_defaults(handler=list_command)

    deliver = sub.add_parser(
        "deliver",
        parents=parents,
        help="run one delivery round now (sinks from --config and the environment)",
    )
    add_json_flag(deliver)
    deliver.set_defaults(handler=deliver_command)

    retry = sub.add_parser("retry", parents=parents, help="queue failed alerts again")
    add_json_flag(retry)
    retry.set_defaults(handler=retry_command)

    test = sub.add_parser("test", parents=parents, help="raise a test alert (audited)")
    add_json_flag(test)
    test.set_defaults(handler=test_command)


def alert_json(alert: Alert) -> dict[str, Any]:
    """An alert and its delivery state as a JSON object."""
    return {
        **alert.body(),
        "state": alert.state,
        "attempts": alert.attempts,
        "next_at": iso(alert.next_at) if alert.state == "pending" else None,
        "last_error": alert.last_error,
        "delivered_at": iso(alert.delivered_at),
    }


async def _control_conn(directory: Path) -> Any:
    async with control_plane(directory):  # creates control.db and the outbox if missing
        pass
    return await open_connection(directory / "control.db")


def list_command(args: argparse.Namespace) -> int:
    """``alerts list [--failed | --pending]``."""
    state = "failed" if args.failed else "pending" if args.pending else None

    async def run() -> tuple[list[Alert], dict[str, int]]:
        conn = await _control_conn(data_dir(args))
        try:
            return (
                await outbox.listing(conn, state=state, limit=max(1, args.limit)),
                await outbox.counts(conn),
            )
        finally:
            await conn.close()

    alerts, counts = asyncio.run(run())
    if args.json:
        print_json({"counts": counts, "alerts": [alert_json(a) for a in alerts]})
        return EXIT_OK
    if not alerts:
        print(f"no {state or ''} alerts".replace("  ", " "))
    else:
        rows = [
            [
                a.event_id,
                iso(a.ts) or "",
                a.kind,
                a.severity,
                a.tenant or "-",
                a.state,
                str(a.attempts),
                (a.last_error or "")[:60],
            ]
            for a in alerts
        ]
        header = ["ID", "AT", "KIND", "SEVERITY", "TENANT", "STATE", "TRIES", "LAST ERROR"]
        print(table(rows, header))
    print(", ".join(f"{n} {s}" for s, n in counts.items()))
    return EXIT_OK


def deliver_command(args: argparse.Namespace) -> int:
    """``alerts deliver``: one round, with the sinks ``serve`` would use: the settings file
    (``--config``, else ``$HYPERTAB_CONFIG``) under the ``HYPERTAB_*`` environment."""
    try:
        config = AlertConfig.from_env(configured_environ(args))
    except AlertConfigError as exc:
        raise CliError(str(exc)) from None

    async def run() -> tuple[int, dict[str, int]]:
        directory = data_dir(args)
        conn = await _control_conn(directory)
        dispatcher = AlertDispatcher(directory / "control.db", config)
        try:
            delivered = await dispatcher.run_round(conn)
            return delivered, dispatcher.counts
        finally:
            await dispatcher.stop()
            await conn.close()

    delivered, counts = asyncio.run(run())
    if args.json:
        print_json({"delivered": delivered, "counts": counts})
    else:
        print(
            f"{delivered} alert(s) delivered; " + ", ".join(f"{n} {s}" for s, n in counts.items())
        )
    return EXIT_OK


def retry_command(args: argparse.Namespace) -> int:
    """``alerts retry``."""

    async def run() -> int:
        conn = await _control_conn(data_dir(args))
        try:
            return await outbox.retry_failed(conn, now=now())
        finally:
            await conn.close()

    count = asyncio.run(run())
    if args.json:
        print_json({"requeued": count})
    else:
        print(f"{count} failed alert(s) queued again")
    return EXIT_OK


def test_command(args: argparse.Namespace) -> int:
    """``alerts test``."""

    async def run() -> None:
        async with control_plane(data_dir(args)) as plane:
            entry = AuditEntry(now(), actor(), Action.ALERT_TEST, target="alerts")
            await record(plane, entry)

    asyncio.run(run())
    if args.json:
        print_json({"raised": "test"})
    else:
        print("test alert raised; a running server delivers it (or: hypertab alerts deliver)")
    return EXIT_OK


async def record_chain_broken(directory: Path, log_name: str, entry_id: int) -> None:
    """For ``audit verify``: record, and so alert, a broken chain in the control log."""
    async with control_plane(directory) as plane:
        await record(plane, audit_chain_broken(log_name, entry_id, actor(), now()))
