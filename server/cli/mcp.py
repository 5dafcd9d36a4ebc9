"""``hypertab mcp``: delegates to the MCP server in ``client_sdk.mcp`` (an SDK client of a
running hub, never the hub's internals). The API key comes from the environment or a key
file, never from the command line."""

from __future__ import annotations

import argparse

from server.cli.common import Commands


def register(commands: Commands) -> None:
    """Add the ``mcp`` command."""
    from client_sdk.mcp.options import add_arguments

    parser = commands.add_parser(
        "mcp",
        help="serve tables to an AI agent over MCP (stdio or HTTP)",
        description="Serve Hypertab tables to an AI agent over the Model Context Protocol. "
        "The API key comes from $HYPERTAB_API_KEY or a key file (--key-file or "
        "$HYPERTAB_API_KEY_FILE, mode 0600), never from the command line.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the MCP server until its transport closes."""
    from client_sdk.mcp.app import run as run_mcp

    return run_mcp(args)
