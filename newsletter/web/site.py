"""`newsletter serve`: the archive of sent issues, its Atom feed and one-click unsubscribe.

Routes (`site_routes`, one table): GET / (latest issues), GET /feed.atom, GET /issues/<as-of>/
(the web version) and the files beside it (charts, email.txt, stats.json; the charts are what
`images: hosted` links), and /u/<token> (RFC 8058), there only when the site has its key.
HEAD works wherever GET does. Bound to 127.0.0.1 by default.

GET /u/<token> only shows a confirmation page with a button, because mail scanners follow
links; POST /u/<token> (the button, or a mail provider's one-click request with the body
`List-Unsubscribe=One-Click`) unsubscribes. A tampered or foreign token is refused with 400 and
changes nothing. A page reached through a token is a `token_page` (no-store, noindex).
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route

from newsletter.web.http import ERROR_HANDLERS, AccessLog, respond, token_page

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from starlette.requests import Request
    from starlette.responses import Response

    from newsletter.app.site import Site

_AS_OF = re.compile(r"^[0-9\-]+$")
ISSUE_CACHE = "public, max-age=3600"
"""An archived issue's files never change once it is public."""


class SiteEndpoints:
    """The public site's request handlers: each turns a request into one call of `Site`.

    Plain functions, so Starlette runs them in its thread pool: `Site` reads files and the
    database."""

    def __init__(self, site: Site, clock: Callable[[], datetime]) -> None:
        self.site = site
        self.clock = clock

    def index(self, request: Request) -> Response:
        return respond(self.site.index_page())

    def feed(self, request: Request) -> Response:
        return respond(self.site.feed(), content_type="application/atom+xml")

    def issue_without_slash(self, request: Request) -> Response:
        as_of = request.path_params["as_of"]
        if not _AS_OF.match(as_of):
            raise HTTPException(HTTPStatus.NOT_FOUND)
        return respond(
            b"", status=HTTPStatus.MOVED_PERMANENTLY, headers={"Location": f"/issues/{as_of}/"}
        )

    def issue_file(self, request: Request) -> Response:
        found = self.site.issue_file(
            request.path_params["as_of"], request.path_params.get("name", "")
        )
        if found is None:
            raise HTTPException(HTTPStatus.NOT_FOUND)
        return respond(found.body, content_type=found.content_type, cache=ISSUE_CACHE)

    def confirm_unsubscribe(self, request: Request) -> Response:
        token = request.path_params["token"]
        address = self.site.verify(token)
        if address is None:
            return token_page(self.site.unsubscribe_page("invalid"), HTTPStatus.BAD_REQUEST)
        return token_page(
            self.site.unsubscribe_page("confirm", address=address, action=f"/u/{token}")
        )

    def unsubscribe(self, request: Request) -> Response:
        """The button's POST and the provider's one-click POST alike: the body is not needed
        (and not read), the token says who."""
        address = self.site.unsubscribe(request.path_params["token"], self.clock())
        if address is None:
            return token_page(self.site.unsubscribe_page("invalid"), HTTPStatus.BAD_REQUEST)
        return token_page(self.site.unsubscribe_page("done", address=address))


def site_routes(endpoints: SiteEndpoints) -> list[Route]:
    """The public site's routes; /u/ is there only when unsubscribe links can be verified."""
    routes = [
        Route("/", endpoints.index),
        Route("/feed.atom", endpoints.feed),
        Route("/issues/{as_of}", endpoints.issue_without_slash),
        Route("/issues/{as_of}/", endpoints.issue_file),
        Route("/issues/{as_of}/{name}", endpoints.issue_file),
    ]
    if endpoints.site.unsubscribes:
        for path in ("/u/{token}", "/u/{token}/"):
            routes += [
                Route(path, endpoints.confirm_unsubscribe, methods=["GET"]),
                Route(path, endpoints.unsubscribe, methods=["POST"]),
            ]
    return routes


def make_site_app(site: Site, clock: Callable[[], datetime]) -> Starlette:
    """The public site as an ASGI app; without the key, /u/ answers 404."""
    app = Starlette(
        routes=site_routes(SiteEndpoints(site, clock)),
        middleware=[Middleware(AccessLog)],
        exception_handlers=ERROR_HANDLERS,
    )
    app.router.redirect_slashes = False  # /issues/<as-of> redirects itself, relative to the host
    return app
