"""What both HTTP servers share: complete, cache-aware responses logged through logging."""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from http import HTTPStatus

logger = logging.getLogger(__name__)

PAGE_POLICY = "default-src 'none'; img-src 'self' https: data:; style-src 'unsafe-inline'"
"""The Content-Security-Policy of every page and file served: no script, no outside loads."""


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that answers with complete, cache-aware responses and logs through logging."""

    server_version = "RotationDigest"
    sys_version = ""

    def send_body(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        logger.info("%s %s", self.address_string(), format % args)
