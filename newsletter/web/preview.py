"""`newsletter preview`: the draft exactly as it will ship, served on 127.0.0.1.

GET / is the preview page (app/preview.py decides what it shows); /draft/<file> serves the
draft's files (the email's HTML and text, its charts, stats.json); /events is a server-sent
event stream that says "change" when the draft's inputs change, so an open page reloads itself.
"""

from __future__ import annotations

import threading
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from secrets import token_urlsafe
from typing import TYPE_CHECKING

from newsletter.app.preview import preview_page
from newsletter.web.http import PAGE_POLICY, QuietHandler

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from newsletter.app.preview import Draft, DraftPreview

KEEPALIVE_S = 15.0
SHELL_POLICY = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; "
    "frame-src 'self'; connect-src 'self'"
)


def _content_type(name: str) -> str:
    if name.endswith(".png"):
        return "image/png"
    if name.endswith((".txt", ".json")):
        return "text/plain; charset=utf-8"
    return "text/html; charset=utf-8"


def make_handler(
    preview: DraftPreview, stop: threading.Event, clock: Callable[[], datetime]
) -> type[QuietHandler]:
    """The preview's request handler: the page, the draft's files and the event stream."""

    class Handler(QuietHandler):
        def _page(self, draft: Draft) -> None:
            nonce = token_urlsafe(16)
            self.send_body(
                HTTPStatus.OK if draft.error is None else HTTPStatus.INTERNAL_SERVER_ERROR,
                preview_page(draft, nonce, clock()).encode(),
                headers={
                    "Cache-Control": "no-store",
                    "Content-Security-Policy": SHELL_POLICY.format(nonce=nonce),
                },
            )

        def _events(self) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            seen = preview.changes
            try:
                while not stop.is_set():
                    now = preview.wait_for_change(seen, KEEPALIVE_S)
                    if now > seen:
                        seen = now
                        self.wfile.write(f"event: change\ndata: {now}\n\n".encode())
                    else:
                        self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/events":
                self._events()
                return
            draft = preview.current()
            if path == "/":
                self._page(draft)
                return
            name = path.removeprefix("/draft/")
            data = draft.built.files.get(name) if draft.built and path != name else None
            if data is None:
                self.send_body(HTTPStatus.NOT_FOUND, b"Not found", "text/plain; charset=utf-8")
                return
            self.send_body(
                HTTPStatus.OK,
                data,
                _content_type(name),
                {"Cache-Control": "no-store", "Content-Security-Policy": PAGE_POLICY},
            )

    return Handler


def make_preview_server(
    host: str,
    port: int,
    preview: DraftPreview,
    stop: threading.Event,
    clock: Callable[[], datetime],
) -> ThreadingHTTPServer:
    """The preview's HTTP server, bound but not yet serving."""
    return ThreadingHTTPServer((host, port), make_handler(preview, stop, clock))
