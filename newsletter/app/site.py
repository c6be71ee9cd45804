"""What the public site (`newsletter serve`) shows: the archive, its feed, and unsubscribes.

The web driver turns requests into calls of `Site` and its answers into responses; everything
it shows is decided here, so the same pages can be tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from newsletter.app import signup
from newsletter.app.audience import unsubscribe
from newsletter.app.keys import local_unsubscribe_key
from newsletter.app.wiring import database
from newsletter.db.history import delivered_issues
from newsletter.issue.archive import (
    CONTENT_TYPES,
    PAGE_FILE,
    ArchivedIssue,
    atom_feed,
    list_archive,
    read_archived_file,
)
from newsletter.issue.render import make_environment, render_page
from newsletter.mail.unsubscribe import verify_token

if TYPE_CHECKING:
    from datetime import datetime

    from newsletter.config import Config, Secrets

ARCHIVE_TEMPLATE = "archive.html.j2"
UNSUBSCRIBE_TEMPLATE = "unsubscribe.html.j2"
SIGNUP_TEMPLATE = "signup.html.j2"
CONFIRM_TEMPLATE = "confirm.html.j2"
_CONFIRM_STATUS = {
    signup.ConfirmState.ASK: 200,
    signup.ConfirmState.DONE: 200,
    signup.ConfirmState.ALREADY: 200,
    signup.ConfirmState.STALE: 409,
    signup.ConfirmState.EXPIRED: 410,
    signup.ConfirmState.INVALID: 400,
}
_SIGNUP_STATUS = {
    signup.SignupAnswer.FORM: 200,
    signup.SignupAnswer.SENT: 200,
    signup.SignupAnswer.LIMITED: 429,
    signup.SignupAnswer.INVALID: 400,
}


@dataclass(frozen=True, slots=True)
class Page:
    """An HTML page to answer with, and its HTTP status."""

    status: int
    html: str


@dataclass(frozen=True, slots=True)
class Document:
    """A file to serve and its content type."""

    body: bytes
    content_type: str


class Site:
    """The archive of sent issues and, with the unsubscribe key, the one-click unsubscribe."""

    def __init__(self, config: Config, key: bytes | None) -> None:
        self.config = config
        self.key = key
        self.env = make_environment(config.templates.dir)

    @classmethod
    def for_config(cls, config: Config, secrets: Secrets) -> Site:
        """The site with the key the project's links are signed with: the environment's, or
        with the built-in server the project's local key (app/send.py)."""
        key = secrets.unsubscribe_key
        if key is None and config.smtp.is_builtin:
            key = local_unsubscribe_key(config)
        return cls(config, key)

    @property
    def signups(self) -> bool:
        """Whether the signup form is published (signup.enabled, and a key to sign links)."""
        return self.config.signup.enabled and self.key is not None

    @property
    def unsubscribes(self) -> bool:
        """Whether unsubscribe links can be verified (the key is set)."""
        return self.key is not None

    def published(self) -> list[ArchivedIssue]:
        """The archived issues at least one reader has, newest first: an issue whose send has
        not reached anybody (yet, or ever) is not public."""
        delivered = delivered_issues(database(self.config))
        return [
            issue for issue in list_archive(self.config.archive_dir) if issue.as_of in delivered
        ]

    def index_page(self) -> str:
        """The latest issues, newest first."""
        issues = self.published()
        return render_page(
            self.env,
            ARCHIVE_TEMPLATE,
            list_name=self.config.newsletter.name,
            issues=issues,
            signup=self.signups,
        )

    def feed(self) -> bytes:
        """The Atom feed of the archive."""
        name = self.config.newsletter.name
        return atom_feed(
            self.published(),
            title=name,
            base_url=self.config.newsletter.base_url,
            author=name,
        )

    def issue_file(self, as_of: str, name: str) -> Document | None:
        """An archived issue's file (its web page, text, numbers or a chart), or None; an empty
        `name` is the issue's web page."""
        name = name or PAGE_FILE
        body = read_archived_file(self.config.archive_dir, as_of, name)
        if body is None:
            return None
        if as_of not in {day.isoformat() for day in delivered_issues(database(self.config))}:
            return None
        return Document(body, CONTENT_TYPES[name.rsplit(".", 1)[1]])

    def verify(self, token: str) -> str | None:
        """The address a genuine token of this list was made for."""
        if self.key is None:
            return None
        return verify_token(self.key, self.config.newsletter.list_id, token)

    def unsubscribe(self, token: str, now: datetime) -> str | None:
        """Unsubscribe the token's address (at once, and for good); None for a bad token."""
        if self.key is None:
            return None
        return unsubscribe(self.config, self.key, token, now)

    def unsubscribe_page(self, state: str, **context: str) -> str:
        """The unsubscribe endpoint's page: "confirm", "done" or "invalid"."""
        return render_page(
            self.env,
            UNSUBSCRIBE_TEMPLATE,
            state=state,
            list_name=self.config.newsletter.name,
            **context,
        )

    def signup_page(self) -> Page:
        """The signup form on a page of its own."""
        return self._signup(signup.SignupResult(signup.SignupAnswer.FORM), signup.SignupForm(""))

    def sign_up(self, form: signup.SignupForm, client: str, now: datetime) -> Page:
        """Take a signup (the form's POST) and say what happens next."""
        assert self.key is not None  # the driver serves /signup only when `signups`
        return self._signup(signup.sign_up(self.config, self.key, form, client, now), form)

    def _signup(self, result: signup.SignupResult, form: signup.SignupForm) -> Page:
        html = render_page(
            self.env,
            SIGNUP_TEMPLATE,
            state=result.answer.value,
            problem=result.problem,
            email=form.email,
            reader=form.name,
            page=form.page,
            list_name=self.config.newsletter.name,
            days=self.config.signup.confirm_days,
        )
        return Page(_SIGNUP_STATUS[result.answer], html)

    def confirm_page(self, token: str, now: datetime, *, use: bool) -> Page:
        """A confirmation link's page: with `use` (its POST) it confirms, else it asks."""
        assert self.key is not None
        act = signup.confirm if use else signup.confirm_state
        state = act(self.config, self.key, token, now)
        html = render_page(
            self.env,
            CONFIRM_TEMPLATE,
            state=state.value,
            list_name=self.config.newsletter.name,
            days=self.config.signup.confirm_days,
            action=f"/confirm/{token}",
        )
        return Page(_CONFIRM_STATUS[state], html)
