"""``hypertab mcp``: the MCP server process, on the official ``mcp`` package.

How it works
------------
One SDK :class:`~client_sdk.client.Client` connects to the hub with the agent's key (from
the environment or a 0600 key file, ``keysource.py``) and a :class:`~client_sdk.mcp.tools.
Gateway` runs the tools on it. The ``mcp`` low-level ``Server`` lists the tools (input
schemas from ``schemas.py``), dispatches ``tools/call`` to the gateway, and serves each
visible table's schema as a resource ``hypertab://tables/<id>`` (a read is audited like a
tool call, as ``read_resource``). Tool failures are tool
results with ``is_error`` and ``{"error": {"code", "message"}}``, so a model can read and
correct them.

Transports: stdio (the default: the agent host spawns this process), and Streamable HTTP
(``--transport http``, on 127.0.0.1 by default; it has no authentication of its own, so
keep it on loopback).

The key: rotating or revoking it makes the hub close the connection at once (4003). With a
key file, a new key written into it is picked up within ``--key-poll`` seconds and the client
reconnects with it; with ``HYPERTAB_API_KEY``, tool calls fail with ``connection_lost``
until the process is restarted with a new key.

This package imports only ``client_sdk``, ``protocol`` and ``mcp`` (a test checks it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import mcp_types as types
from mcp.server import Server, ServerRequestContext

from client_sdk.client import Client
from client_sdk.errors import AuthenticationError, HypertabError
from client_sdk.mcp.keysource import KeySource, KeySourceError
from client_sdk.mcp.options import add_arguments
from client_sdk.mcp.tools import TOOLS, Gateway, ToolError

log = logging.getLogger(__name__)

RESOURCE_PREFIX = "hypertab://tables/"
INSTRUCTIONS = (
    "Hypertab tables shared live with people and other agents. Start with list_tables and "
    "describe_table; read with query_rows (filters, sorting, paging), edit with insert_rows, "
    "update_rows and delete_rows. Cells are keyed by column name; _id is the row id. Every "
    "call is recorded in the tenant's audit log."
)


def _text(data: Any) -> list[types.ContentBlock]:
    return [types.TextContent(text=json.dumps(data, ensure_ascii=False, default=str))]


def build_server(gateway: Gateway) -> Server[Any]:
    """The MCP server exposing ``gateway``'s tools and the table schemas."""
    tools = [
        types.Tool(
            name=spec.name,
            description=spec.description,
            input_schema=spec.input_schema,
            annotations=types.ToolAnnotations(
                read_only_hint=spec.read_only,
                destructive_hint=spec.destructive,
                open_world_hint=False,
            ),
        )
        for spec in TOOLS.values()
    ]

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        try:
            result = await gateway.call(params.name, params.arguments)
        except ToolError as exc:
            error = {"error": {"code": exc.code, "message": exc.message}}
            return types.CallToolResult(
                content=_text(error), structured_content=error, is_error=True
            )
        return types.CallToolResult(content=_text(result), structured_content=result)

    async def list_resources(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        try:
            tables = await gateway.client.list_tables()
        except HypertabError:
            tables = []
        return types.ListResourcesResult(
            resources=[
                types.Resource(
                    uri=f"{RESOURCE_PREFIX}{t.id}",
                    name=t.name,
                    description=f"Schema of the table {t.name!r}: columns, types, formulas.",
                    mime_type="application/json",
                )
                for t in tables
            ]
        )

    async def read_resource(
        ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        if not uri.startswith(RESOURCE_PREFIX):
            raise ValueError(f"no resource {uri!r}")
        try:
            schema = await gateway.read_schema(uri.removeprefix(RESOURCE_PREFIX))
        except ToolError as exc:
            raise ValueError(f"{exc.code}: {exc.message}") from None
        text = json.dumps(schema, ensure_ascii=False)
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=uri, mime_type="application/json", text=text)]
        )

    return Server(
        "hypertab",
        version="1",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options of ``hypertab mcp`` (the key is never one of them)."""
    parser = argparse.ArgumentParser(
        prog="hypertab mcp",
        description="Serve Hypertab tables to an AI agent over MCP. The API key comes from "
        "$HYPERTAB_API_KEY or a key file (--key-file or $HYPERTAB_API_KEY_FILE, mode 0600).",
    )
    add_arguments(parser)
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    """Connect to the hub and serve MCP until the transport closes."""
    source = KeySource.from_env(os.environ, args.key_file)
    client = await Client.connect(args.url, api_key=source.read())
    watcher = asyncio.get_running_loop().create_task(
        source.watch(client.set_api_key, interval=args.key_poll)
    )
    server = build_server(Gateway(client))
    try:
        if args.transport == "http":
            import uvicorn

            app = server.streamable_http_app(host=args.host)
            config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")
            await uvicorn.Server(config).serve()
        else:
            from mcp.server.stdio import stdio_server

            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await client.close()


def run(args: argparse.Namespace) -> int:
    """Run the MCP server; the process exit code."""
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="hypertab mcp: %(levelname)s %(message)s"
    )
    try:
        asyncio.run(serve(args))
    except KeySourceError as exc:
        print(f"hypertab mcp: error: {exc}", file=sys.stderr)
        return 2
    except AuthenticationError as exc:
        print(f"hypertab mcp: error: the hub refused the key ({exc})", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"hypertab mcp: error: cannot reach the hub ({exc})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m client_sdk.mcp``."""
    return run(parse_args(argv))
