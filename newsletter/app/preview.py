"""The editor's draft as it will ship, rebuilt whenever its inputs change.

Its inputs are the config file, the templates folder and the issue's notes file; their
fingerprint (path, mtime, size) decides whether a request needs a rebuild, so what the preview
shows is never stale. The prices stay loaded across rebuilds and the charts are redrawn only
when the numbers change. A build error (a typo in the config or a template) becomes part of
the draft instead of an exception. A watchfiles loop tells waiting pages that inputs changed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import TYPE_CHECKING

from watchfiles import watch

from newsletter.app.build import ChartCache, build_issue, sample_message
from newsletter.app.built import TEXT_FILE, BuiltIssue
from newsletter.app.data import Market, load_market
from newsletter.app.drafts import notes_path
from newsletter.app.review import approval_state
from newsletter.app.status import issue_status
from newsletter.config import TemplatesSection, load_config
from newsletter.errors import NewsletterError
from newsletter.issue.render import make_environment, render_page
from newsletter.mail.lint import GMAIL_CLIP_BYTES

if TYPE_CHECKING:
    from datetime import date, datetime
    from pathlib import Path

    from newsletter.config import Config

logger = logging.getLogger(__name__)

PREVIEW_TEMPLATE = "preview.html.j2"


@dataclass(frozen=True, slots=True)
class Draft:
    """One build of the draft, or the error that stopped it."""

    version: int
    config: Config | None
    built: BuiltIssue | None
    error: str | None = None


Fingerprint = tuple[tuple[str, int, int], ...]


class DraftPreview:
    """The draft of one issue, rebuilt whenever its inputs change."""

    def __init__(
        self,
        config_path: Path,
        requested: date | None,
        *,
        market: Market | None = None,
        charts: ChartCache | None = None,
    ) -> None:
        """`market` seeds the loaded prices and `charts` the drawn charts (a test hands in
        what it loaded and drew once)."""
        self.config_path = config_path
        self.requested = requested
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._fingerprint: Fingerprint | None = None
        self._notified: Fingerprint | None = None
        self._market: tuple[object, Market] | None = None
        """The loaded prices and the settings they came from: an edit of the words reuses them."""
        self._seed = market
        self._charts = charts or ChartCache()
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
                after = self._fingerprint_now(self._draft.config)
                # The inputs as they were before the build, so a save during it still counts
                # as a change; a build that names other inputs (a new config) is taken as is.
                same_inputs = [f[0] for f in after] == [f[0] for f in fingerprint]
                self._fingerprint = fingerprint if same_inputs else after
            return self._draft

    def _load(self, config: Config) -> Market:
        key = (config.market, config.stats, config.paths.var_dir)
        if self._market is None or self._market[0] != key:
            seed, self._seed = self._seed, None
            self._market = (key, seed or load_market(config, self.requested))
        return self._market[1]

    def _build(self, version: int) -> Draft:
        config = None
        try:
            config = load_config(self.config_path)
            built = build_issue(
                config, self.requested, market=self._load(config), chart_cache=self._charts
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


def preview_page(draft: Draft, nonce: str, now: datetime) -> str:
    """The preview's page: inbox view, approval, sizes, headers, lint, the email and its text.

    `nonce` is the one the page's scripts carry (the page's Content-Security-Policy names it).
    """
    env = make_environment(draft.config.templates.dir if draft.config else TemplatesSection().dir)
    context: dict[str, object] = {
        "draft": draft,
        "clip_limit": GMAIL_CLIP_BYTES,
        "nonce": nonce,
        "built": None,
    }
    if draft.built is not None and draft.config is not None:
        built = draft.built
        message = sample_message(draft.config, built.rendered)
        state = issue_status(draft.config, built.stats.as_of, now)
        context |= {
            "state": state,
            "sent_warning": state.sent_warning(built),
            "built": built,
            "headers": _headers(message),
            "html_bytes": len(built.rendered.html.encode()),
            "message_bytes": len(message),
            "text": built.files[TEXT_FILE].decode(),
            "approval": approval_state(draft.config, built),
            "require_approval": draft.config.schedule.require_approval,
        }
    return render_page(env, PREVIEW_TEMPLATE, **context)
