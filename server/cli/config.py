"""``hypertab config check|example``: the settings file (``server/settings.py``).

- ``check [--config FILE]``: decodes the file (else ``$HYPERTAB_CONFIG``) with the
  ``HYPERTAB_*`` environment over it, exactly as ``serve`` would, and prints every bad key
  and value at once, each with what it accepts (exit 2), or the resulting settings (exit 0;
  ``--json`` for one object). Secrets are never part of the settings, so none is printed.
- ``example``: a commented TOML file with every setting at its default.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import msgspec

from server.cli.common import EXIT_OK, Commands, add_json_flag, print_json
from server.settings import ENV_CONFIG, example, load


def register(commands: Commands) -> None:
    """Add the ``config`` group."""
    group = commands.add_parser("config", help="check or print the settings file")
    sub = group.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    check = sub.add_parser(
        "check",
        help="validate a settings file and the HYPERTAB_* environment",
        description="Decode the settings as serve would (file, then HYPERTAB_* variables) "
        "and name every bad key or value with what it accepts (exit 2), or print them.",
    )
    check.add_argument(
        "--config", type=Path, metavar="FILE", help=f"TOML file (default: ${ENV_CONFIG})"
    )
    add_json_flag(check)
    check.set_defaults(handler=check_command)

    ex = sub.add_parser("example", help="print a commented settings file with every setting")
    ex.set_defaults(handler=example_command)


def check_command(args: argparse.Namespace) -> int:
    """``config check``: every problem at once (SettingsError, exit 2), else the settings."""
    settings = load(args.config)
    values = msgspec.to_builtins(settings)
    if args.json:
        print_json({"ok": True, "settings": values})
    else:
        source = args.config or os.environ.get(ENV_CONFIG) or "(no file: defaults, environment)"
        print(f"{source}: ok")
        for name, value in values.items():
            print(f"  {name} = {value!r}")
    return EXIT_OK


def example_command(args: argparse.Namespace) -> int:
    """``config example``."""
    sys.stdout.write(example())
    sys.stdout.flush()
    return EXIT_OK
