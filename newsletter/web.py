"""`newsletter serve`: the archive of sent issues, its Atom feed and one-click unsubscribe.

Routes: GET / (latest issues), GET /feed.atom, GET /issues/<as-of>/ (the web version) and the
files beside it (charts, email.txt, stats.json; the charts are what `images: hosted` links),
and /u/<token> (RFC 8058). Bound to 127.0.0.1 by default.

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

from newsletter.archive import CONTENT_TYPES, archived_file, atom_feed, list_archive
from newsletter.render import make_environment, render_page

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from newsletter.config import Config
    from newsletter.pipeline import UnsubscribePages

logger = logging.getLogger(__name__)

_UNSUBSCRIBE = re.compile(r"^/u/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)/?$")
_ISSUE = re.compile(r"^/issues/([0-9\-]+)(/([A-Za-z0-9_.\-]*))?$")
MAX_BODY = 4096
ARCHIVE_TEMPLATE = "archive.html.j2"
PAGE_POLICY = "default-src 'none'; img-src 'self' https: data:; style-src 'unsafe-inline'"


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


def make_handler(
    config: Config, pages: UnsubscribePages | None, clock: Callable[[], datetime]
) -> type[BaseHTTPRequestHandler]:
    """A request handler class serving `config`'s archive and, with `pages`, unsubscribes."""
    env = make_environment(config.templates.dir)
    root = config.archive_dir
    name = config.newsletter.name

    class Handler(QuietHandler):
        def _page(self, status: HTTPStatus, html: str, cache: str = "no-cache") -> None:
            self.send_body(
                status,
                html.encode(),
                headers={"Cache-Control": cache, "Content-Security-Policy": PAGE_POLICY},
            )

        def _unsubscribe_page(self, status: HTTPStatus, html: str) -> None:
            self.send_body(
                status,
                html.encode(),
                headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"},
            )

        def _token(self) -> str | None:
            match = _UNSUBSCRIBE.match(self.path.split("?", 1)[0])
            return match.group(1) if match else None

        def _not_found(self) -> None:
            self._page(HTTPStatus.NOT_FOUND, "<!DOCTYPE html><title>Not found</title><p>Not found.")

        def _archive(self, path: str) -> None:
            if path == "/":
                issues = list_archive(root)
                self._page(
                    HTTPStatus.OK, render_page(env, ARCHIVE_TEMPLATE, list_name=name, issues=issues)
                )
                return
            if path == "/feed.atom":
                feed = atom_feed(
                    list_archive(root), title=name, base_url=config.newsletter.base_url, author=name
                )
                self.send_body(
                    HTTPStatus.OK, feed, "application/atom+xml", {"Cache-Control": "no-cache"}
                )
                return
            match = _ISSUE.match(path)
            if match is None:
                self._not_found()
                return
            as_of, slash, filename = match.groups()
            if slash is None:
                self.send_body(
                    HTTPStatus.MOVED_PERMANENTLY, b"", headers={"Location": f"/issues/{as_of}/"}
                )
                return
            found = archived_file(root, as_of, filename or "index.html")
            if found is None:
                self._not_found()
                return
            kind = found.suffix.lstrip(".")
            self.send_body(
                HTTPStatus.OK,
                found.read_bytes(),
                CONTENT_TYPES[kind],
                {"Cache-Control": "public, max-age=3600", "Content-Security-Policy": PAGE_POLICY},
            )

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if not path.startswith("/u/"):
                self._archive(path)
                return
            token = self._token()
            if pages is None or token is None:
                self._not_found()
                return
            address = pages.verify(token)
            if address is None:
                self._unsubscribe_page(HTTPStatus.BAD_REQUEST, pages.page("invalid"))
                return
            self._unsubscribe_page(
                HTTPStatus.OK, pages.page("confirm", address=address, action=f"/u/{token}")
            )

        do_HEAD = do_GET

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(min(length, MAX_BODY))
            token = self._token()
            if pages is None:
                self._not_found()
                return
            address = pages.unsubscribe(token, clock()) if token else None
            if address is None:
                self._unsubscribe_page(HTTPStatus.BAD_REQUEST, pages.page("invalid"))
                return
            self._unsubscribe_page(HTTPStatus.OK, pages.page("done", address=address))

    return Handler


def make_server(
    host: str,
    port: int,
    config: Config,
    pages: UnsubscribePages | None,
    clock: Callable[[], datetime],
) -> ThreadingHTTPServer:
    """The HTTP server, bound but not yet serving; without `pages`, /u/ answers 404."""
    return ThreadingHTTPServer((host, port), make_handler(config, pages, clock))
