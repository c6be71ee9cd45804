"""The local web endpoint: one-click unsubscribe (RFC 8058), bound to 127.0.0.1 by default.

GET /u/<token> only shows a confirmation page with a button, because mail scanners follow
links; POST /u/<token> (the button, or a mail provider's one-click request) unsubscribes.
A tampered or foreign token is refused with 400 and changes nothing.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from newsletter.pipeline import UnsubscribePages

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

logger = logging.getLogger(__name__)

_PATH = re.compile(r"^/u/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)/?$")
MAX_BODY = 4096


def make_handler(
    pages: UnsubscribePages, clock: Callable[[], datetime]
) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to `pages` (the unsubscribe logic and its templates)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "RotationDigest"
        sys_version = ""

        def _reply(self, status: HTTPStatus, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Robots-Tag", "noindex")
            self.end_headers()
            self.wfile.write(data)

        def _token(self) -> str | None:
            match = _PATH.match(self.path.split("?", 1)[0])
            return match.group(1) if match else None

        def do_GET(self) -> None:
            token = self._token()
            if token is None:
                self._reply(HTTPStatus.NOT_FOUND, pages.page("invalid"))
                return
            address = pages.verify(token)
            if address is None:
                self._reply(HTTPStatus.BAD_REQUEST, pages.page("invalid"))
                return
            self._reply(HTTPStatus.OK, pages.page("confirm", address=address, action=f"/u/{token}"))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(min(length, MAX_BODY))
            token = self._token()
            address = pages.unsubscribe(token, clock()) if token else None
            if address is None:
                self._reply(HTTPStatus.BAD_REQUEST, pages.page("invalid"))
                return
            self._reply(HTTPStatus.OK, pages.page("done", address=address))

        def log_message(self, format: str, *args: object) -> None:
            logger.info("%s %s", self.address_string(), format % args)

    return Handler


def make_server(
    host: str, port: int, pages: UnsubscribePages, clock: Callable[[], datetime]
) -> ThreadingHTTPServer:
    """The HTTP server, bound but not yet serving."""
    return ThreadingHTTPServer((host, port), make_handler(pages, clock))
