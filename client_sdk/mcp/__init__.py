"""The MCP server for agents (``hypertab mcp``), built on the SDK and the ``mcp`` package.

- ``app.py``: the process: key, client, transports (stdio, Streamable HTTP).
- ``tools.py``: the tools and how each call is audited by the hub before its effect.
- ``schemas.py``: the tools' arguments (validation and advertised JSON Schemas).
- ``keysource.py``: the API key from the environment or a 0600 file, re-read on change.

Imports only ``client_sdk``, ``protocol`` and ``mcp``: never the hub (``server``).
"""
