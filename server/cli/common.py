"""What every command group shares: errors, ``--data-dir``, the control plane, output."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.auth.apikeys import IssuedKey, KeyRecord
from server.auth.ids import is_tenant_id
from server.auth.principal import TenantId
from server.config import load_pepper
from server.control.plane import ControlPlane
from server.control.tenants import TenantRecord
from server.settings import ENV_CONFIG, Settings
from server.settings import load as load_settings

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Commands = Any

Handler = Callable[[argparse.Namespace], int]
"""A leaf command: takes the parsed arguments, returns the exit code."""

CONTROL_DB = "control.db"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class CliError(Exception):
    """An expected failure: printed as one line to stderr, exit code 1."""


class UsageError(CliError):
    """The command line is wrong: printed with the usage hint, exit code 2."""


_DASHED_ID = re.compile(r"-[A-Za-z0-9_][A-Za-z0-9_-]{0,62}")
"""An id (``protocol.limits.ID_PATTERN``) that starts with one ``-``, as table ids may. Words
starting with ``--`` stay options, so a mistyped option is still reported as one."""


class Parser(argparse.ArgumentParser):
    """argparse, except that a word shaped like an id and naming no option is a value.

    Ids may start with ``-`` (``-x7Qa``: table ids are client-chosen), and argparse takes any
    word starting with ``-`` for an unknown option, so ``--table -x7Qa`` failed with
    "expected one argument". Here a word of one ``-`` and an id's characters that names no
    option is an argument like any other; words naming an option (``-h``, ``--tab`` for
    ``--table``) and words starting with ``--`` are still options, and when a value is taken
    for an option the error suggests ``--option=VALUE`` (or ``--`` before positionals).
    """

    def _parse_optional(self, arg_string: str) -> Any:
        parsed = super()._parse_optional(arg_string)
        if parsed is None or "=" in arg_string or not _DASHED_ID.fullmatch(arg_string):
            return parsed
        # Python 3.11 returns one (action, option, ...) tuple, 3.12+ a list of them.
        entries = parsed if isinstance(parsed, list) else [parsed]
        if all(entry[0] is None for entry in entries):  # names no option of this parser
            return None
        return parsed

    def error(self, message: str) -> Any:
        """Exit 2 with ``message``, plus how to pass a value starting with ``-``."""
        match = re.fullmatch(r"argument (--[a-z-]+)(?:/\S+)?: expected one argument", message)
        if match is not None:
            option = match.group(1)
            message += f" (a value starting with '-', such as a table id, goes as {option}=VALUE)"
        elif message.startswith("unrecognized arguments: -") or "ignored explicit" in message:
            message += " (a mistyped option? a value starting with '-' goes as --option=VALUE)"
        super().error(message)


def _path_flag_parent(flag: str, metavar: str, help: str) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(flag, type=Path, default=None, metavar=metavar, help=help)
    return parent


def data_dir_parent() -> argparse.ArgumentParser:
    """A parent parser adding ``--data-dir`` (default ``$HYPERTAB_DATA_DIR``, else ``./data``)."""
    return _path_flag_parent(
        "--data-dir", "DIR", "data directory (default: $HYPERTAB_DATA_DIR, else ./data)"
    )


def config_parent() -> argparse.ArgumentParser:
    """A parent parser adding ``--config FILE``: the TOML settings file ``serve`` reads."""
    return _path_flag_parent(
        "--config",
        "FILE",
        f"TOML settings file, as for serve (default: ${ENV_CONFIG}); HYPERTAB_* variables "
        "override it",
    )


def settings(args: argparse.Namespace) -> Settings:
    """The validated settings as ``serve`` reads them: ``--config`` (else ``$HYPERTAB_CONFIG``),
    then the ``HYPERTAB_*`` environment; a bad value is a :class:`~server.settings.SettingsError`
    naming it (exit 2)."""
    return load_settings(getattr(args, "config", None))


def configured_environ(args: argparse.Namespace) -> dict[str, str]:
    """The process environment with every setting of :func:`settings` written in, for the
    parts that read ``HYPERTAB_*`` variables (alert sinks, delivery rules), as ``serve``
    hands them (:meth:`server.settings.Settings.environ`)."""
    return settings(args).environ(os.environ)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """``--json``: one JSON object on stdout instead of text."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def data_dir(args: argparse.Namespace) -> Path:
    """The data directory the command works on: ``--data-dir``, else the configured one
    (``$HYPERTAB_DATA_DIR``, the ``--config`` or ``$HYPERTAB_CONFIG`` file's ``data_dir``,
    else ``./data``).

    Only commands that set ``creates_data_dir`` (``serve``, ``tenant create``, ``tenant
    import``, ``keyring generate``) may start a new one; every other command refuses a
    directory without a ``control.db`` (exit 2), creating nothing: a mistyped path must not
    look like an empty install.
    """
    value: Path | None = args.data_dir
    if value is None or getattr(args, "config", None) is not None:  # a named file is checked
        configured = Path(settings(args).data_dir)
        value = value if value is not None else configured
    directory = value
    if not getattr(args, "creates_data_dir", False) and not is_data_dir(directory):
        raise UsageError(
            f"no Hypertab data directory at {directory} (it has no {CONTROL_DB}); "
            "check --data-dir / $HYPERTAB_DATA_DIR, or create a tenant there first"
        )
    return directory


def is_data_dir(directory: Path) -> bool:
    """Whether ``directory`` holds a Hypertab install (its ``control.db``)."""
    return (directory / CONTROL_DB).is_file()


def environment() -> str:
    """The key environment (``HYPERTAB_ENV``: ``live`` or ``test``) the server accepts."""
    return load_settings().environment


@contextlib.asynccontextmanager
async def control_plane(directory: Path) -> AsyncIterator[ControlPlane]:
    """The control plane of ``directory``, without the revocation watcher; always closed."""
    plane = await ControlPlane.open(
        directory, pepper=load_pepper_checked(directory), environment=environment(), watch=False
    )
    try:
        yield plane
    finally:
        await plane.close()


def load_pepper_checked(directory: Path) -> bytes:
    """:func:`server.config.load_pepper`, with its refusal turned into a :class:`CliError`."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return load_pepper(directory)
    except SystemExit as exc:  # load_pepper refuses a group/world-readable pepper file
        raise CliError(str(exc.code)) from None


def actor() -> str:
    """``cli:<os user>``: who made a change, for the audit trail."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"[:200]


async def resolve_tenant(plane: ControlPlane, ref: str) -> TenantRecord:
    """A live tenant by id, or by name when exactly one live tenant has that name."""
    if is_tenant_id(ref):
        record = await plane.get_tenant(TenantId(ref))
        if record is not None and record.active:
            return record
    matches = [t for t in await plane.list_tenants() if t.name == ref]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise CliError(f"{len(matches)} tenants are named {ref!r}: give the tenant id")
    raise CliError(f"no tenant {ref!r}")


def iso(ts: float | None) -> str | None:
    """Unix time as an ISO 8601 UTC string (seconds), or ``None``."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def tenant_json(record: TenantRecord) -> dict[str, Any]:
    """A tenant as a JSON object."""
    return {
        "id": record.id,
        "name": record.name,
        "plan": record.plan.value,
        "region": record.region,
        "created_at": iso(record.created_at),
        "deleted_at": iso(record.deleted_at),
    }


def key_status(record: KeyRecord, now: float) -> str:
    """``live``, ``revoked`` or ``expired``."""
    if record.revoked_at is not None:
        return "revoked"
    return "live" if record.is_live(now) else "expired"


def key_json(record: KeyRecord, now: float) -> dict[str, Any]:
    """A key's record as a JSON object (never its hash nor its secret)."""
    return {
        "id": record.id,
        "tenant": record.tenant,
        "name": record.name,
        "environment": record.environment,
        "status": key_status(record, now),
        "scopes": sorted(s.value for s in record.scopes),
        "tables": sorted(record.tables) if record.tables is not None else None,
        "created_by": record.created_by,
        "created_at": iso(record.created_at),
        "expires_at": iso(record.expires_at),
        "revoked_at": iso(record.revoked_at),
        "last_used_at": iso(record.last_used_at),
        "replaced_by": record.replaced_by,
        "rate": record.rate,
    }


def issued_json(issued: IssuedKey, now: float) -> dict[str, Any]:
    """A just-created key, secret included: the only place a secret is ever output."""
    return {**key_json(issued.record, now), "secret": issued.secret}


def print_json(value: object) -> None:
    """One JSON object on one line of stdout."""
    print(json.dumps(value, sort_keys=True), flush=True)


@dataclass(frozen=True, slots=True)
class Output:
    """A command's output: text lines for people, or (``--json``) one JSON object per event."""

    json: bool = False

    def emit(self, event: str, text: str, **fields: Any) -> None:
        """Print ``text``, or ``{"event": event, **fields}`` as one JSON line."""
        if self.json:
            print_json({"event": event, **fields})
        else:
            print(text, flush=True)


def print_secret_notice(issued: IssuedKey) -> None:
    """The text shown with a new key: the key itself, once, and why it cannot be shown again."""
    print(
        f"api key {issued.record.id} (shown once; it is stored hashed and cannot be shown again):"
    )
    print(f"  {issued.secret}", flush=True)


def table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned columns."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    return "\n".join(lines)


def now() -> float:
    """The wall clock, read in one place."""
    return time.time()


def stderr(message: str) -> None:
    """A line of information for the operator, on stderr."""
    print(message, file=sys.stderr, flush=True)
