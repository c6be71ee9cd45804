"""`newsletter serve`: the archive of sent issues, its Atom feed and one-click unsubscribe.

Routes: GET / (latest issues), GET /feed.atom, GET /issues/<as-of>/ (the web version) and the
files beside it (charts, email.txt, stats.json; the charts are what `images: hosted` links),
and /u/<token> (RFC 8058). Bound to 127.0.0.1 by default.

GET /u/<token> only shows a confirmation page with a button, because mail scanners follow
links; POST /u/<token> (the button, or a mail provider's one-click request) unsubscribes.
A tampered or foreign token is refused with 400 and changes nothing.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from newsletter.web.http import PAGE_POLICY, QuietHandler

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from newsletter.app.site import Site

_UNSUBSCRIBE = re.compile(r"^/u/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)/?$")
_ISSUE = re.compile(r"^/issues/([0-9\-]+)(/([A-Za-z0-9_.\-]*))?$")
MAX_BODY = 4096


class SiteHandler(QuietHandler):
    """Serves `site`'s archive and, with its key, unsubscribes (see `make_handler`)."""

    site: Site
    clock: Callable[[], datetime]

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
            self._page(HTTPStatus.OK, self.site.index_page())
            return
        if path == "/feed.atom":
            self.send_body(
                HTTPStatus.OK,
                self.site.feed(),
                "application/atom+xml",
                {"Cache-Control": "no-cache"},
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
        found = self.site.issue_file(as_of, filename or "")
        if found is None:
            self._not_found()
            return
        self.send_body(
            HTTPStatus.OK,
            found.body,
            found.content_type,
            {"Cache-Control": "public, max-age=3600", "Content-Security-Policy": PAGE_POLICY},
        )

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if not path.startswith("/u/"):
            self._archive(path)
            return
        token = self._token()
        if not self.site.unsubscribes or token is None:
            self._not_found()
            return
        address = self.site.verify(token)
        if address is None:
            self._unsubscribe_page(HTTPStatus.BAD_REQUEST, self.site.unsubscribe_page("invalid"))
            return
        self._unsubscribe_page(
            HTTPStatus.OK,
            self.site.unsubscribe_page("confirm", address=address, action=f"/u/{token}"),
        )

    do_HEAD = do_GET

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(min(length, MAX_BODY))
        token = self._token()
        if not self.site.unsubscribes:
            self._not_found()
            return
        address = self.site.unsubscribe(token, self.clock()) if token else None
        if address is None:
            self._unsubscribe_page(HTTPStatus.BAD_REQUEST, self.site.unsubscribe_page("invalid"))
            return
        self._unsubscribe_page(HTTPStatus.OK, self.site.unsubscribe_page("done", address=address))


def make_handler(site: Site, clock: Callable[[], datetime]) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to `site` and `clock`."""
    return type("Handler", (SiteHandler,), {"site": site, "clock": staticmethod(clock)})


def make_server(
    host: str, port: int, site: Site, clock: Callable[[], datetime]
) -> ThreadingHTTPServer:
    """The HTTP server, bound but not yet serving; without the key, /u/ answers 404."""
    return ThreadingHTTPServer((host, port), make_handler(site, clock))
