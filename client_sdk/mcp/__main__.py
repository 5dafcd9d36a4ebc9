"""``python -m client_sdk.mcp``: the MCP server without the ``hypertab`` command."""

from __future__ import annotations

import sys

from client_sdk.mcp.app import main

sys.exit(main())
