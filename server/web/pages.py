"""HTTP answers for the browser: the spreadsheet page and its static files.

How it works
------------
Every file under ``static/`` is read once, when the hub starts, into memory; a request can
only name one of those files (a dictionary lookup, never a file path built from the URL).
The page (``index.html``) is the same for ``/`` and ``/t/<table id>``: the script reads the
path itself. Each page response gets a fresh CSP nonce, substituted for ``{{nonce}}`` in
the HTML (on the ``<script>`` and ``<link>`` tags) and named in the response's
``Content-Security-Policy``, so a script or style injected into the document, which cannot
know the nonce, does not run. Static files get the locked-down policy (a module's own CSP
header does not matter to the page that imports it).

``HubProtocol.send_response`` (server/hub/connection.py) adds the security headers to every
response but keeps a ``Content-Security-Policy`` a route has already set, which is how the
page's nonce policy survives.
"""

from __future__ import annotations

import email.utils
import http
import re
from importlib import resources

from websockets.datastructures import Headers
from websockets.http11 import Response

from server.http.headers import content_security_policy, new_nonce

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_TABLE_PATH = re.compile(r"/t/[A-Za-z0-9_-]{1,64}")
_NONCE_MARK = "{{nonce}}"
STATIC_PREFIX = "/static/"
PAGE_FILE = "index.html"


def _load_static() -> dict[str, bytes]:
    """Every servable file of ``static/``, by name (flat: no subdirectories)."""
    files: dict[str, bytes] = {}
    for entry in resources.files("server.web").joinpath("static").iterdir():
        name = entry.name
        suffix = name[name.rfind(".") :] if "." in name else ""
        if entry.is_file() and suffix in _TYPES:
            files[name] = entry.read_bytes()
    return files


def _response(status: http.HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
        ]
    )
    return Response(status.value, status.phrase, headers, body)


class WebPages:
    """The page and static files of one hub; :meth:`respond` returns ``None`` for other
    paths."""

    def __init__(self) -> None:
        self.files = _load_static()
        self.page = self.files.pop(PAGE_FILE).decode()
        if self.page.count(_NONCE_MARK) < 2:
            raise RuntimeError("index.html must carry the nonce on its script and style")

    def respond(self, path: str) -> Response | None:
        """The response for ``path`` (no query string), or ``None`` when it is not ours."""
        if path == "/" or _TABLE_PATH.fullmatch(path):
            return self.render_page()
        if path.startswith(STATIC_PREFIX):
            name = path[len(STATIC_PREFIX) :]
            body = self.files.get(name)
            if body is None:
                return _response(
                    http.HTTPStatus.NOT_FOUND, b"Not found.\n", "text/plain; charset=utf-8"
                )
            suffix = name[name.rfind(".") :]
            return _response(http.HTTPStatus.OK, body, _TYPES[suffix])
        return None

    def render_page(self) -> Response:
        """The page with a fresh nonce, and the CSP that names only that nonce."""
        nonce = new_nonce()
        body = self.page.replace(_NONCE_MARK, nonce).encode()
        response = _response(http.HTTPStatus.OK, body, _TYPES[".html"])
        response.headers["Content-Security-Policy"] = content_security_policy(nonce)
        return response
