"""The ``hypertab`` command line: ``serve``, ``tenant``, ``key``.

How it works
------------
:func:`build_parser` builds one :mod:`argparse` parser and lets every module named in
:data:`COMMAND_MODULES` add its command group through a ``register(commands)`` function; each
leaf command sets ``handler`` (``Namespace -> exit code``). To add a group (``secret``,
``audit``, ``keyring``, ``certificate``, ...), write ``server/cli/<group>.py`` with a
``register`` function and add its name to :data:`COMMAND_MODULES`.

Exit codes: 0 success, 1 failure (unknown tenant or key, I/O error, port in use, ...), 2 bad
usage (argparse errors, invalid values, bad settings, a ``--data-dir`` that is not a data
directory), 130 interrupted. Expected errors print one line to stderr (bad settings: one line
per problem), never a traceback. No command prints a key except the one it has just created.
Logs go to stderr as redacted JSON lines (:mod:`server.logs`), for every command.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sqlite3
import sys
from collections.abc import Sequence

from server.auth.errors import AuthConfigError
from server.cli.common import EXIT_FAILURE, EXIT_USAGE, CliError, Handler, Parser, UsageError
from server.control.errors import ControlError, InvalidInput
from server.logs import configure_logging
from server.settings import SettingsError

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

COMMAND_MODULES: tuple[str, ...] = (
    "serve",
    "tenant",
    "key",
    "secret",
    "keyring",
    "certificate",
    "audit",
    "alerts",
    "webhook",
    "incident",
    "backup",
    "mcp",
    "config",
)
"""Modules of :mod:`server.cli` that register a command group, in help order."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``hypertab`` parser, with every group of :data:`COMMAND_MODULES` registered.

    ``only`` registers just that group: ``hypertab serve`` then does not import what the
    other commands need (the MCP server's stack alone is ~20 MB of the server's RSS).
    """
    parser = Parser(  # ids may start with "-": see Parser
        prog="hypertab",
        description="Hypertab: realtime collaboration server for tables.",
    )
    parser.add_argument("--version", action="version", version=f"hypertab {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    names = (only,) if only is not None and only in COMMAND_MODULES else COMMAND_MODULES
    for name in names:
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(commands)
    return parser


def version() -> str:
    """The installed distribution's version."""
    try:
        return importlib.metadata.version("hypertab")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a checkout
        return "unknown"


def _fail(message: str, code: int) -> int:
    print(f"hypertab: error: {message}", file=sys.stderr, flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words[0] if words else None)
    args = parser.parse_args(words)  # exits 2 on usage errors
    handler: Handler = args.handler
    configure_logging("WARNING")  # serve raises it to its --log-level
    try:
        return handler(args)
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"hypertab: error: {problem}", file=sys.stderr)
        sys.stderr.flush()
        return EXIT_USAGE
    except UsageError as exc:
        parser.exit(EXIT_USAGE, f"hypertab: error: {exc}\n")
    except InvalidInput as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (CliError, ControlError, AuthConfigError) as exc:
        return _fail(str(exc) or type(exc).__name__, EXIT_FAILURE)
    except sqlite3.Error as exc:
        return _fail(f"database error: {exc}", EXIT_FAILURE)
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), EXIT_FAILURE)
    except KeyboardInterrupt:
        return 130
