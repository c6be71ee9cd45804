"""Where each issue stands in its life, drafted to sent, from its files and the database.

One line for the commands that touch an issue (build, draft, approve, send --test, preview),
a list of recent issues and one issue in detail for `newsletter status`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from newsletter.app.built import WEB_PAGE
from newsletter.app.drafts import NOTES_FILE
from newsletter.app.wiring import database
from newsletter.db.bounces import event_counts, message_counts
from newsletter.db.history import IssueRecord, SendRecord, issue_records
from newsletter.models import UNFINISHED, InboundKind, LedgerStatus

if TYPE_CHECKING:
    from pathlib import Path

    from newsletter.app.built import BuiltIssue
    from newsletter.config import Config

_AS_OF = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class IssueState(StrEnum):
    """An issue's stage; later stages win (an approved issue is also built)."""

    NEW = "not started"
    DRAFTED = "drafted"
    BUILT = "built"
    APPROVED = "approved"
    SENDING = "sending"
    PARTLY_SENT = "partly sent"
    NOT_DELIVERED = "not delivered"
    SENT = "sent"


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "?"
    return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="minutes") + " UTC"


def _counts(send: SendRecord, statuses: tuple[LedgerStatus, ...]) -> str:
    parts = [f"{send.counts[s]} {s}" for s in statuses if send.counts.get(s)]
    return ", ".join(parts)


_NOT_DELIVERED = (LedgerStatus.BOUNCED, LedgerStatus.FAILED, LedgerStatus.SKIPPED)
_WAITING = (LedgerStatus.PENDING, LedgerStatus.CLAIMED, LedgerStatus.DEFERRED)


@dataclass(frozen=True, slots=True)
class IssueStatus:
    """One issue's state and the facts behind it."""

    record: IssueRecord
    notes: Path | None
    built_at: datetime | None

    @property
    def as_of(self) -> date:
        return self.record.as_of

    @property
    def state(self) -> IssueState:
        send = self.record.send
        if send is not None and (send.total or send.begun_unbuilt or send.runs):
            waiting = sum(send.counts.get(s, 0) for s in UNFINISHED)
            if any(run.alive for run in send.runs):
                return IssueState.SENDING
            if waiting or send.begun_unbuilt:
                return IssueState.PARTLY_SENT
            return IssueState.SENT if send.sent else IssueState.NOT_DELIVERED
        if self.record.review.approved_sha256:
            return IssueState.APPROVED
        if self.built_at is not None:
            return IssueState.BUILT
        return IssueState.DRAFTED if self.notes is not None else IssueState.NEW

    def line(self, built: BuiltIssue | None = None) -> str:
        """The state in one line; with the issue as built now, whether it is what was
        approved or sent."""
        state, send = self.state, self.record.send
        if send is not None and state in (IssueState.SENT, IssueState.NOT_DELIVERED):
            refused = _counts(send, _NOT_DELIVERED)
            first, last = _when(send.first_sent_at), _when(send.last_sent_at)
            at = f" at {first}" if first == last else f" from {first} to {last}"
            return (
                f"{state}: to {send.sent} of {send.total} reader(s){at if send.sent else ''}"
                f"{'; ' + refused if refused else ''}{self._runs(send)}"
            )
        if send is not None and state in (IssueState.SENDING, IssueState.PARTLY_SENT):
            waiting = _counts(send, _WAITING) or "its readers not listed yet"
            refused = _counts(send, _NOT_DELIVERED)
            end = (
                " (a sender is working)"
                if state is IssueState.SENDING
                else f" (`newsletter send --as-of {self.as_of.isoformat()}` goes on)"
            )
            return (
                f"{state}: {send.sent} of {send.total} sent; {waiting}"
                f"{', ' + refused if refused else ''}{self._runs(send)}{end}"
            )
        return self._review_line(built)

    def detail(self, built: BuiltIssue | None = None) -> str:
        """`line` without the state's name in front (for a page that shows the name apart)."""
        return self.line(built).split(": ", 1)[1]

    def _runs(self, send: SendRecord) -> str:
        if not send.runs:
            return ""
        ids = ", ".join(str(run.run_id) for run in send.runs)
        return f", by run {ids}" if len(send.runs) == 1 else f", by runs {ids}"

    def _review_line(self, built: BuiltIssue | None) -> str:
        review = self.record.review
        if review.approved_sha256:
            which = ""
            if built is not None:
                which = (
                    ", this content"
                    if built.content_sha256 == review.approved_sha256
                    else ", not this content: approve again"
                )
            return (
                f"approved: content {review.approved_sha256[:12]} at "
                f"{_when(review.approved_at)}{which}; not sent"
            )
        if self.built_at is not None:
            return f"built: {_when(self.built_at)}; not approved, not sent"
        if self.notes is not None:
            return f"drafted: {self.notes}; not built yet"
        return "not started: no notes (`newsletter draft`), not built"

    def sent_warning(self, built: BuiltIssue | None = None) -> str | None:
        """A warning when readers already have this issue: a change reaches only the rest, and
        `built` (the issue as built now) differs from what they got."""
        send = self.record.send
        if send is None or not send.sent:
            return None
        have = (
            f"{send.sent} reader(s) already have issue {self.as_of.isoformat()} (sent "
            f"{_when(send.first_sent_at)})"
        )
        if built is None:
            return (
                f"{have}: a change reaches only those who do not, and only with `send --corrected`"
            )
        if send.content_sha256 == built.content_sha256:
            return None
        return (
            f"{have} and this build differs from what they got: `send` refuses it; see README "
            '"Changing a sent issue"'
        )

    def details(self) -> list[str]:
        """Every fact behind the state, for `newsletter status --as-of`."""
        record, send = self.record, self.record.send
        lines = [f"Issue {self.as_of.isoformat()}: {self.line()}"]
        lines.append(f"  Notes:    {self.notes or 'none'}")
        lines.append(f"  Built:    {_when(self.built_at) if self.built_at else 'no'}")
        review = record.review
        lines.append(
            "  Approved: "
            + (
                f"content {review.approved_sha256[:12]} at {_when(review.approved_at)}"
                if review.approved_sha256
                else "no"
            )
        )
        if review.test_sent_sha256:
            lines.append(
                f"  Test copy: content {review.test_sent_sha256[:12]} at "
                f"{_when(review.test_sent_at)}"
            )
        if send is None:
            return lines
        lines.append(f"  Subject:  {send.subject or '(not built yet)'}")
        if not send.begun_unbuilt:
            lines.append(f"  Sent:     content {send.content_sha256[:12]}")
        counts = ", ".join(f"{count} {status}" for status, count in sorted(send.counts.items()))
        lines.append(f"  Ledger:   {counts or 'empty'}")
        for run in send.runs:
            end = "working" if run.alive else f"ended {_when(run.finished_at)}"
            if run.finished_at is None and not run.alive:
                end = "died (its claims go back to pending at the next send)"
            lines.append(
                f"  Run {run.run_id}:    {run.host} pid {run.pid}, started "
                f"{_when(run.started_at)}, {end}"
            )
        for fix in send.corrections:
            lines.append(
                f"  Corrected: {_when(fix.made_at)}, content {fix.replaced_sha256[:12]} -> "
                f"{fix.content_sha256[:12]}, after {fix.readers_before} reader(s) had it"
            )
        for status, reply, count in send.reasons:
            lines.append(f"  {status.capitalize()}: {count} message(s): {reply}")
        return lines


def _folders(root: Path) -> dict[date, Path]:
    if not root.is_dir():
        return {}
    return {
        date.fromisoformat(folder.name): folder
        for folder in root.iterdir()
        if _AS_OF.match(folder.name) and folder.is_dir()
    }


def _built_at(folder: Path | None) -> datetime | None:
    if folder is None:
        return None
    try:
        return datetime.fromtimestamp((folder / WEB_PAGE).stat().st_mtime, UTC)
    except OSError:
        return None


def issue_statuses(config: Config, now: datetime) -> list[IssueStatus]:
    """Every issue drafted, built or known to the database, newest first."""
    notes = {
        as_of: folder / NOTES_FILE
        for as_of, folder in _folders(config.paths.notes_dir).items()
        if (folder / NOTES_FILE).is_file()
    }
    builds = _folders(config.issues_dir)
    records = issue_records(database(config), set(notes) | set(builds), now)
    statuses = [
        IssueStatus(record, notes.get(as_of), _built_at(builds.get(as_of)))
        for as_of, record in records.items()
    ]
    return sorted(statuses, key=lambda status: status.as_of, reverse=True)


def issue_status(config: Config, as_of: date, now: datetime) -> IssueStatus:
    """The state of the issue for `as_of` (not started, when nothing is known of it)."""
    notes = config.paths.notes_dir / as_of.isoformat() / NOTES_FILE
    records = issue_records(database(config), {as_of}, now, only=as_of)
    return IssueStatus(
        records[as_of],
        notes if notes.is_file() else None,
        _built_at(config.issues_dir / as_of.isoformat()),
    )


def _kinds(counts: dict[InboundKind, int]) -> str:
    return ", ".join(f"{counts[kind]} {kind}" for kind in InboundKind if counts.get(kind))


def mailbox_status(config: Config) -> str | None:
    """The bounce mailbox in one line for `newsletter status`: what was read and what it was
    (None when no mailbox is set up and nothing was read)."""
    read, last = message_counts(database(config))
    if not read:
        if config.bounces.enabled:
            return (
                f"Mailbox: {config.bounces.mailbox_name}, nothing read yet (`newsletter bounces`)"
            )
        if config.newsletter.bounce_address:
            return (
                "Mailbox: none set up (bounces.maildir or bounces.imap_host): bounces to "
                f"{config.newsletter.bounce_address} are not read"
            )
        return None
    return (
        f"Mailbox: {sum(read.values())} message(s) read, the last at {_when(last)}: {_kinds(read)}"
    )


def issue_bounces(config: Config, as_of: date) -> str | None:
    """What the bounce mailbox said about one issue's messages, for `status --as-of`."""
    counts = event_counts(database(config), as_of)
    return f"  Bounces:  {_kinds(counts)} (from the bounce mailbox)" if counts else None
