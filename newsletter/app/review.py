"""The editor's review: approving exactly this content, and the test copy that asks for it."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from newsletter.app.send import send_test
from newsletter.app.wiring import database
from newsletter.db.reviews import approve, note_test_sent, review
from newsletter.errors import LintError

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from newsletter.app.built import BuiltIssue
    from newsletter.config import Config, Secrets


class Approval(StrEnum):
    """Whether the editor approved exactly the content built now."""

    APPROVED = "approved"
    CHANGED = "changed since it was approved"
    NOT_APPROVED = "not approved"


def approve_issue(config: Config, built: BuiltIssue, now: datetime) -> None:
    """Record that the editor approved exactly this content of the issue for the schedule."""
    if built.lint_errors:
        raise LintError(
            f"issue {built.stats.as_of.isoformat()} has {len(built.lint_errors)} lint error(s), "
            f"the first: {built.lint_errors[0].text}; fix them before approving"
        )
    approve(database(config), built.stats.as_of, built.content_sha256, now)


def approval_state(config: Config, built: BuiltIssue) -> Approval:
    """Whether the editor approved exactly this content."""
    approved = review(database(config), built.stats.as_of).approved_sha256
    if approved == built.content_sha256:
        return Approval.APPROVED
    return Approval.CHANGED if approved else Approval.NOT_APPROVED


def request_approval(
    config: Config,
    built: BuiltIssue,
    editor: str,
    *,
    secrets: Secrets,
    clock: Callable[[], datetime],
) -> bool:
    """Mail the editor one [TEST] copy of this content to approve, unless they have it already.

    Returns True if a copy went out now. Each version of the content is mailed once, however
    often a waiting run checks again.
    """
    engine = database(config)
    if review(engine, built.stats.as_of).test_sent_sha256 == built.content_sha256:
        return False
    send_test(config, built, editor, secrets=secrets, clock=clock)
    note_test_sent(engine, built.stats.as_of, built.content_sha256, clock())
    return True
