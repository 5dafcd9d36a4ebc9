"""The ``hypertab mcp`` command-line options.

Kept apart from ``app`` so that building the CLI's parser imports neither the ``mcp``
package nor the SDK client: every ``hypertab`` command builds the whole parser, and
importing the MCP stack there cost about 0.9 s per CLI start.
"""

from __future__ import annotations

import argparse
import os

DEFAULT_URL = "ws://127.0.0.1:8765/v1/ws"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``hypertab mcp`` options to ``parser``."""
    parser.add_argument(
        "--url",
        default=os.environ.get("HYPERTAB_URL", DEFAULT_URL),
        help=f"the hub's WebSocket URL (default: $HYPERTAB_URL, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--key-file", metavar="PATH", help="file holding the API key (mode 0600); re-read on change"
    )
    parser.add_argument(
        "--transport",
        choices=["stdio", "http"],
        default="stdio",
        help="stdio (default: spawned by the agent host) or Streamable HTTP at /mcp",
    )
    parser.add_argument("--host", default="127.0.0.1", help="HTTP transport address")
    parser.add_argument("--port", type=int, default=8766, help="HTTP transport port")
    parser.add_argument(
        "--key-poll", type=float, default=0.2, metavar="SECONDS", help="key file poll interval"
    )
