"""The browser spreadsheet and the JavaScript client, served by the hub itself.

``pages.py`` answers ``/``, ``/t/<table id>`` and ``/static/<file>``; ``static/`` holds the
page (HTML, CSS, ES modules) as package data of ``server``. Nothing here is built: the
modules are served as written, and ``static/hypertab.mjs`` is the JavaScript client other
web apps import (``docs/js-client.md``).
"""

from __future__ import annotations

from server.web.pages import WebPages

__all__ = ["WebPages"]
