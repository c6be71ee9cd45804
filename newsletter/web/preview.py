"""`newsletter preview`: the draft exactly as it will ship, served on 127.0.0.1.

GET / is the preview page (app/preview.py decides what it shows); /draft/<file> serves the
draft's files (the email's HTML and text, its charts, stats.json); /events is a server-sent
event stream that says "change" when the draft's inputs change, so an open page reloads itself.
Only a request addressed to the server itself is answered (`HostCheck`): a page elsewhere whose
DNS name is rebound to 127.0.0.1 could otherwise read the draft.
"""

from __future__ import annotations

import time
from http import HTTPStatus
from secrets import token_urlsafe
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from newsletter.app.preview import preview_page
from newsletter.web.http import ERROR_HANDLERS, HTML, PAGE_POLICY, TEXT, AccessLog, respond

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterator
    from datetime import datetime

    from starlette.requests import Request
    from starlette.types import ASGIApp, Receive, Scope, Send

    from newsletter.app.preview import DraftPreview

KEEPALIVE_S = 15.0
TICK_S = 1.0
"""How often an event stream looks at the stop flag: a stop ends every stream within it."""
SHELL_POLICY = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; "
    "frame-src 'self'; connect-src 'self'; frame-ancestors 'none'"
)
DRAFT_POLICY = f"{PAGE_POLICY}; frame-ancestors 'self'"
"""The draft's files: the preview page frames the email, nothing else may."""
EVENT_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def _content_type(name: str) -> str:
    if name.endswith(".png"):
        return "image/png"
    if name.endswith((".txt", ".json")):
        return TEXT
    return HTML


class HostCheck:
    """ASGI middleware: 421 for a request whose Host is not this server's address (the name
    it was bound to, the address the client reached, localhost or 127.0.0.1, with its port)."""

    def __init__(self, app: ASGIApp, bound_host: str) -> None:
        self.app = app
        self.names = {bound_host.lower(), "localhost", "127.0.0.1", "::1"}

    def allowed(self, scope: Scope) -> bool:
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
        local, port = scope["server"] or ("", 0)
        names = {f"[{name}]" if ":" in name else name for name in {*self.names, local}}
        return host in {f"{name}:{port}" for name in names} | (names if port == 80 else set())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.allowed(scope):
            answer = respond(
                "This server answers only requests for its own address.",
                status=HTTPStatus.MISDIRECTED_REQUEST,
                content_type=TEXT,
                cache="no-store",
            )
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)


class PreviewEndpoints:
    """The preview's request handlers; plain functions (a rebuild takes a while), so Starlette
    runs them in its thread pool."""

    def __init__(
        self, preview: DraftPreview, stop: threading.Event, clock: Callable[[], datetime]
    ) -> None:
        self.preview = preview
        self.stop = stop
        self.clock = clock

    def page(self, request: Request) -> Response:
        draft = self.preview.current()
        nonce = token_urlsafe(16)
        return respond(
            preview_page(draft, nonce, self.clock()),
            status=HTTPStatus.OK if draft.error is None else HTTPStatus.INTERNAL_SERVER_ERROR,
            cache="no-store",
            policy=SHELL_POLICY.format(nonce=nonce),
        )

    def draft_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        built = self.preview.current().built
        data = built.files.get(name) if built else None
        if data is None:
            raise HTTPException(HTTPStatus.NOT_FOUND)
        return respond(
            data, content_type=_content_type(name), cache="no-store", policy=DRAFT_POLICY
        )

    def events(self, request: Request) -> Response:
        if request.method == "HEAD":
            return Response(headers=EVENT_HEADERS)
        return StreamingResponse(self._stream(), headers=EVENT_HEADERS)

    def _stream(self) -> Iterator[bytes]:
        """ "change" after each change of the inputs, a comment every KEEPALIVE_S otherwise,
        until the server stops (Starlette also ends it when the client goes)."""
        seen = self.preview.changes
        quiet_since = time.monotonic()
        while not self.stop.is_set():
            now = self.preview.wait_for_change(seen, TICK_S)
            if now > seen:
                seen = now
                quiet_since = time.monotonic()
                yield f"event: change\ndata: {now}\n\n".encode()
            elif time.monotonic() - quiet_since >= KEEPALIVE_S:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"


def make_preview_app(
    preview: DraftPreview,
    stop: threading.Event,
    clock: Callable[[], datetime],
    bound_host: str,
) -> Starlette:
    """The preview as an ASGI app for a server bound to `bound_host`; setting `stop` ends its
    event streams."""
    endpoints = PreviewEndpoints(preview, stop, clock)
    return Starlette(
        routes=[
            Route("/", endpoints.page),
            Route("/draft/{name}", endpoints.draft_file),
            Route("/events", endpoints.events),
        ],
        middleware=[Middleware(AccessLog), Middleware(HostCheck, bound_host=bound_host)],
        exception_handlers=ERROR_HANDLERS,
    )
