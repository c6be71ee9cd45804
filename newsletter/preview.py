"""`newsletter preview`: the draft exactly as it will ship, on 127.0.0.1, rebuilt as the editor
writes.

GET / shows the subject, preheader, headers, HTML size against Gmail's clip limit, the lint
findings, the HTML in a desktop/phone-width frame and the text part. Every request rebuilds
the draft first if the config file, the issue's notes or a template changed since the last
build (so what you see is never stale), and a watchfiles thread pushes a server-sent event to
/events on such a change, so an open page reloads itself. A build error (a typo in the config
or a template) shows on the page instead of stopping the server.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from secrets import token_urlsafe
from typing import TYPE_CHECKING

from watchfiles import watch

from newsletter.config import load_config
from newsletter.errors import NewsletterError
from newsletter.lint import GMAIL_CLIP_BYTES
from newsletter.pipeline import (
    approval_state,
    build_issue,
    load_market,
    notes_path,
    sample_message,
)
from newsletter.render import make_environment, render_page
from newsletter.web import PAGE_POLICY, QuietHandler

if TYPE_CHECKING:
    from datetime import date
    from pathlib import Path

    from newsletter.config import Config
    from newsletter.models import Chart
    from newsletter.pipeline import BuiltIssue, Market

logger = logging.getLogger(__name__)

PREVIEW_TEMPLATE = "preview.html.j2"
KEEPALIVE_S = 15.0
SHELL_POLICY = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; "
    "frame-src 'self'; connect-src 'self'"
)


@dataclass(frozen=True, slots=True)
class Draft:
    """One build of the draft, or the error that stopped it."""

    version: int
    config: Config | None
    built: BuiltIssue | None
    error: str | None = None


Fingerprint = tuple[tuple[str, int, int], ...]


class DraftPreview:
    """The draft of one issue, rebuilt whenever its inputs change.

    Its inputs are the config file, the templates folder and the issue's notes file; their
    fingerprint (path, mtime, size) decides whether a request needs a rebuild.
    """

    def __init__(self, config_path: Path, requested: date | None) -> None:
        self.config_path = config_path
        self.requested = requested
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._fingerprint: Fingerprint | None = None
        self._notified: Fingerprint | None = None
        self._market: tuple[object, Market] | None = None
        """The loaded prices and the settings they came from: an edit of the words reuses them."""
        self._charts: dict[str, tuple[Chart, ...]] = {}
        self._draft = Draft(0, None, None, "not built yet")
        self.changes = 0
        """Bumped on each change of the inputs that the watcher saw (for /events)."""

    def _inputs(self, config: Config | None) -> list[Path]:
        """The files and folders whose contents make the draft."""
        paths = [self.config_path]
        if config is not None:
            paths.append(config.templates.dir)
            built = self._draft.built
            paths.append(notes_path(config, built.stats.as_of) if built else config.paths.notes_dir)
        return paths

    def _fingerprint_now(self, config: Config | None) -> Fingerprint:
        found: list[tuple[str, int, int]] = []
        for path in self._inputs(config):
            files = sorted(path.rglob("*")) if path.is_dir() else [path]
            for file in files:
                try:
                    stat = file.stat()
                except OSError:
                    found.append((str(file), -1, -1))
                    continue
                found.append((str(file), stat.st_mtime_ns, stat.st_size))
        return tuple(found)

    def current(self) -> Draft:
        """The draft as the inputs are now: rebuilt first if any changed."""
        with self._lock:
            fingerprint = self._fingerprint_now(self._draft.config)
            if fingerprint != self._fingerprint:
                self._draft = self._build(self._draft.version + 1)
                self._fingerprint = self._fingerprint_now(self._draft.config)
            return self._draft

    def _build(self, version: int) -> Draft:
        config = None
        try:
            config = load_config(self.config_path)
            key = (config.market, config.stats, config.paths.var_dir)
            if self._market is None or self._market[0] != key:
                self._market = (key, load_market(config, self.requested))
                self._charts.clear()
            built = build_issue(
                config, self.requested, market=self._market[1], chart_cache=self._charts
            )
        except NewsletterError as err:
            logger.warning("preview build failed: %s", err)
            return Draft(version, config, None, str(err))
        logger.info("preview rebuilt (version %d)", version)
        return Draft(version, config, built)

    def notice_change(self) -> None:
        """Tell waiting /events streams that the inputs changed, if they really did."""
        with self._lock:
            now = self._fingerprint_now(self._draft.config)
            changed = now not in (self._fingerprint, self._notified)
            self._notified = now
        if changed:
            with self._changed:
                self.changes += 1
                self._changed.notify_all()

    def wait_for_change(self, seen: int, timeout: float) -> int:
        """Block until `changes` passes `seen` or `timeout` elapses; returns `changes`."""
        with self._changed:
            self._changed.wait_for(lambda: self.changes > seen, timeout)
            return self.changes

    def watch(self, stop: threading.Event) -> None:
        """Run the file watcher until `stop` is set (a thread's target).

        watchfiles reports changes in the templates and notes folders at once; its one-second
        timeout ticks also catch the config file, which editors often replace rather than
        write (a watch on the file itself would be lost with the old inode).
        """
        while not stop.is_set():
            folders = self._watched_folders()
            if not folders:
                stop.wait(1.0)
                self.notice_change()
                continue
            for _changes in watch(
                *folders, stop_event=stop, rust_timeout=1000, yield_on_timeout=True
            ):
                self.notice_change()
                if self._watched_folders() != folders:
                    break  # the config moved the templates or notes: watch the new folders

    def _watched_folders(self) -> list[str]:
        config = self._draft.config
        folders = [config.templates.dir, config.paths.notes_dir] if config else []
        return [str(folder) for folder in folders if folder.is_dir()]


def _headers(data: bytes) -> list[tuple[str, str]]:
    message = BytesHeaderParser(policy=default_policy).parsebytes(data)
    return [(name, str(value)) for name, value in message.items()]


def make_handler(preview: DraftPreview, stop: threading.Event) -> type[QuietHandler]:
    """The preview's request handler: the shell page, the draft's files and the event stream."""

    class Handler(QuietHandler):
        def _shell(self, draft: Draft) -> None:
            env = make_environment(
                draft.config.templates.dir if draft.config else _fallback_templates()
            )
            nonce = token_urlsafe(16)
            context: dict[str, object] = {
                "draft": draft,
                "clip_limit": GMAIL_CLIP_BYTES,
                "nonce": nonce,
                "built": None,
            }
            if draft.built is not None and draft.config is not None:
                built = draft.built
                message = sample_message(draft.config, built.rendered)
                context |= {
                    "built": built,
                    "headers": _headers(message),
                    "html_bytes": len(built.rendered.html.encode()),
                    "message_bytes": len(message),
                    "text": built.files["email.txt"].decode(),
                    "approval": approval_state(draft.config, built),
                    "require_approval": draft.config.schedule.require_approval,
                }
            self.send_body(
                HTTPStatus.OK if draft.error is None else HTTPStatus.INTERNAL_SERVER_ERROR,
                render_page(env, PREVIEW_TEMPLATE, **context).encode(),
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
                self._shell(draft)
                return
            name = path.removeprefix("/draft/")
            data = draft.built.files.get(name) if draft.built and path != name else None
            if data is None:
                self.send_body(HTTPStatus.NOT_FOUND, b"Not found", "text/plain; charset=utf-8")
                return
            kind = "image/png" if name.endswith(".png") else "text/html; charset=utf-8"
            if name.endswith((".txt", ".json")):
                kind = "text/plain; charset=utf-8"
            self.send_body(
                HTTPStatus.OK,
                data,
                kind,
                {"Cache-Control": "no-store", "Content-Security-Policy": PAGE_POLICY},
            )

    return Handler


def _fallback_templates() -> Path:
    from newsletter.config import TemplatesSection  # noqa: PLC0415

    return TemplatesSection().dir


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True


def make_preview_server(
    host: str, port: int, preview: DraftPreview, stop: threading.Event
) -> PreviewServer:
    """The preview's HTTP server, bound but not yet serving."""
    return PreviewServer((host, port), make_handler(preview, stop))
