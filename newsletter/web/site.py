"""`newsletter serve`: the archive of sent issues, its Atom feed, signup and one-click unsubscribe.

Routes (`site_routes`, one table): GET / (latest issues), GET /feed.atom, GET /issues/<as-of>/
(the web version) and the files beside it (charts, email.txt, stats.json; the charts are what
`images: hosted` links), /u/<token> (RFC 8058), and GET/POST /signup with GET/POST
/confirm/<token> (double opt-in), these two there only when the site has its key.
HEAD works wherever GET does. Bound to 127.0.0.1 by default. With a `NoticeWorker`, the app
starts and stops it with itself (lifespan) and wakes it after each signup and confirmation.

GET /confirm/<token> shows a button, like GET /u/<token>; its POST confirms. A signup's form
body is read up to MAX_FORM bytes (more: 413).

GET /u/<token> only shows a confirmation page with a button, because mail scanners follow
links; POST /u/<token> (the button, or a mail provider's one-click request with the body
`List-Unsubscribe=One-Click`) unsubscribes. A tampered or foreign token is refused with 400 and
changes nothing. A page reached through a token is a `token_page` (no-store, noindex).
"""

from __future__ import annotations

import contextlib
import re
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route

from newsletter.app.signup import SignupForm
from newsletter.web.http import ERROR_HANDLERS, AccessLog, respond, token_page

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from datetime import datetime

    from starlette.requests import Request
    from starlette.responses import Response

    from newsletter.app.notices import NoticeWorker
    from newsletter.app.site import Page, Site

_AS_OF = re.compile(r"^[0-9\-]+$")
ISSUE_CACHE = "public, max-age=3600"
"""An archived issue's files never change once it is public."""
MAX_FORM = 8192
"""The largest signup form body read: an address, a name and a path fit many times over."""


class SiteEndpoints:
    """The public site's request handlers: each turns a request into one call of `Site`.

    Plain functions, so Starlette runs them in its thread pool: `Site` reads files and the
    database."""

    def __init__(
        self,
        site: Site,
        clock: Callable[[], datetime],
        on_notice: Callable[[], None] = lambda: None,
    ) -> None:
        self.site = site
        self.clock = clock
        self.on_notice = on_notice

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

    def signup_form(self, request: Request) -> Response:
        return _page(self.site.signup_page())

    async def signup(self, request: Request) -> Response:
        """The form's POST: the answer is a page (see app/signup.py), never a redirect."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                raise HTTPException(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=16)
        form = SignupForm(
            *(fields.get(name, [""])[0] for name in ("email", "name", "page", "website"))
        )
        client = request.client.host if request.client else ""
        page = await run_in_threadpool(self.site.sign_up, form, client, self.clock())
        if page.status == HTTPStatus.OK:  # refused posts queue nothing: no drain for them
            self.on_notice()
        return token_page(page.html, page.status)  # it names the address: never stored

    def confirm_form(self, request: Request) -> Response:
        page = self.site.confirm_page(request.path_params["token"], self.clock(), use=False)
        return token_page(page.html, page.status)

    def confirm(self, request: Request) -> Response:
        page = self.site.confirm_page(request.path_params["token"], self.clock(), use=True)
        if page.status == HTTPStatus.OK:
            self.on_notice()
        return token_page(page.html, page.status)


def _page(page: Page) -> Response:
    return respond(page.html, status=page.status)


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
    if endpoints.site.signups:
        routes += [
            Route("/signup", endpoints.signup_form, methods=["GET"]),
            Route("/signup", endpoints.signup, methods=["POST"]),
            Route("/confirm/{token}", endpoints.confirm_form, methods=["GET"]),
            Route("/confirm/{token}", endpoints.confirm, methods=["POST"]),
        ]
    return routes


def make_site_app(
    site: Site, clock: Callable[[], datetime], notices: NoticeWorker | None = None
) -> Starlette:
    """The public site as an ASGI app; without the key, /u/, /signup and /confirm/ answer 404.
    `notices` (the confirmation and welcome mails' sender) runs while the app does."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if notices is not None:
            notices.start()
        try:
            yield
        finally:
            if notices is not None:
                await run_in_threadpool(notices.stop)

    wake = notices.wake if notices is not None else (lambda: None)
    app = Starlette(
        routes=site_routes(SiteEndpoints(site, clock, wake)),
        middleware=[Middleware(AccessLog)],
        exception_handlers=ERROR_HANDLERS,
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # /issues/<as-of> redirects itself, relative to the host
    return app
