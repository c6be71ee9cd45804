"""What both web servers share: complete responses with their security headers, the error
pages, and an access log that never shows a token.

Every response carries Content-Type, Content-Length, `X-Content-Type-Options: nosniff`,
Cache-Control and a Content-Security-Policy; a page that shows a token (/u/<token>, and any
later /confirm/<token>) is also no-store, noindex and sends no Referer.
"""

from __future__ import annotations

import logging
import re
import time
from http import HTTPStatus
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.responses import Response

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

PAGE_POLICY = "default-src 'none'; img-src 'self' https: data:; style-src 'unsafe-inline'"
"""The Content-Security-Policy of every page and file served: no script, no outside loads."""
PUBLIC_POLICY = f"{PAGE_POLICY}; form-action 'self'; frame-ancestors 'none'"
"""PAGE_POLICY for the public site: no other site may frame a page (a framed unsubscribe
button is a clickjacking target), and a form posts only back to this site."""
HTML = "text/html; charset=utf-8"
TEXT = "text/plain; charset=utf-8"

TOKEN_PATH = re.compile(r"^/(u|confirm)/[^/]+")
"""The paths that carry a subscriber's token: the access log shows them as /u/<redacted>.
A new route whose path holds a secret adds its first segment here."""


def respond(
    body: bytes | str,
    *,
    status: int = HTTPStatus.OK,
    content_type: str = HTML,
    cache: str = "no-cache",
    policy: str = PUBLIC_POLICY,
    headers: dict[str, str] | None = None,
) -> Response:
    """A complete response: Starlette adds Content-Length (kept for HEAD, which gets no body)."""
    return Response(
        body.encode() if isinstance(body, str) else body,
        status_code=status,
        headers={
            "Content-Type": content_type,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": cache,
            "Content-Security-Policy": policy,
            **(headers or {}),
        },
    )


def token_page(html: str, status: int = HTTPStatus.OK) -> Response:
    """A page reached through a subscriber's token: never stored, indexed or sent on as Referer."""
    return respond(
        html,
        status=status,
        cache="no-store",
        headers={"X-Robots-Tag": "noindex", "Referrer-Policy": "no-referrer"},
    )


async def error_page(request: Request, exc: Exception) -> Response:
    """Starlette's errors (no route: 404, wrong method: 405 with Allow, a bug: 500) as complete
    pages with the same headers as every other answer."""
    status = exc.status_code if isinstance(exc, HTTPException) else HTTPStatus.INTERNAL_SERVER_ERROR
    phrase = HTTPStatus(status).phrase
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    return respond(
        f"<!DOCTYPE html><title>{phrase}</title><p>{phrase}.",
        status=status,
        headers=headers,
    )


ERROR_HANDLERS = {HTTPException: error_page, Exception: error_page}
"""Starlette's exception handlers for both apps (`Exception` is the handler of last resort)."""


def redacted(path: str) -> str:
    """`path` as the log may show it: a token's segment becomes <redacted>."""
    return TOKEN_PATH.sub(r"/\1/<redacted>", path)


class AccessLog:
    """ASGI middleware: one INFO line per request on the `newsletter.web.http` logger (client,
    method, path with tokens redacted, status, time to the response's start), written before
    the response goes out; the query string is left out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answered = False

        def log(status: int) -> None:
            client = scope.get("client") or ("-", 0)
            elapsed_ms = (time.perf_counter() - started) * 1000
            path = redacted(scope["path"])
            logger.info(
                '%s "%s %s" %d %.1f ms', client[0], scope["method"], path, status, elapsed_ms
            )

        async def sending(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                log(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            if not answered:
                log(HTTPStatus.INTERNAL_SERVER_ERROR)
            raise
