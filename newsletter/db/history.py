"""What the database knows of each issue's life: its send (counts, times, runs and why
messages were not delivered) and the editor's review, for `newsletter status`."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.db.ledger import INTENT
from newsletter.db.runs import alive
from newsletter.db.schema import corrections, issues, ledger, reader, reviews, runs
from newsletter.models import LedgerStatus


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One sender process's run of an issue's send."""

    run_id: int
    host: str
    pid: int
    started_at: datetime
    finished_at: datetime | None
    alive: bool


@dataclass(frozen=True, slots=True)
class Correction:
    """A corrected edition: from `made_at` the readers who did not have the issue got it."""

    made_at: datetime
    readers_before: int
    replaced_sha256: str
    content_sha256: str


@dataclass(frozen=True, slots=True)
class SendRecord:
    """An issue's send as the ledger has it (empty counts: the send began, nothing enqueued)."""

    subject: str
    content_sha256: str
    counts: dict[LedgerStatus, int]
    first_sent_at: datetime | None
    last_sent_at: datetime | None
    runs: tuple[RunRecord, ...]
    reasons: tuple[tuple[LedgerStatus, str, int], ...] = ()
    """(status, reply, how many) of the messages not delivered, most frequent first."""
    corrections: tuple[Correction, ...] = ()

    @property
    def begun_unbuilt(self) -> bool:
        return self.content_sha256 == INTENT

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def sent(self) -> int:
        return self.counts.get(LedgerStatus.SENT, 0)


@dataclass(frozen=True, slots=True)
class ReviewRecord:
    """The editor's approval and review copy of an issue, when there are any."""

    approved_sha256: str | None = None
    approved_at: datetime | None = None
    test_sent_sha256: str | None = None
    test_sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IssueRecord:
    """Everything the database holds about the issue for one as-of."""

    as_of: date
    send: SendRecord | None = None
    review: ReviewRecord = field(default_factory=ReviewRecord)


_REASONS = 5
"""How many kinds of undelivered message a detailed record names."""


def _send(conn: Connection, row: sa.Row[tuple[object, ...]], now: datetime) -> SendRecord:
    where = ledger.c.issue_id == row.id
    counts = {
        LedgerStatus(status): int(count)
        for status, count in conn.execute(
            sa.select(ledger.c.status, sa.func.count()).where(where).group_by(ledger.c.status)
        )
    }
    first, last = conn.execute(
        sa.select(sa.func.min(ledger.c.sent_at), sa.func.max(ledger.c.sent_at)).where(where)
    ).one()
    host = socket.gethostname()
    run_rows = conn.execute(sa.select(runs).where(runs.c.issue_id == row.id).order_by(runs.c.id))
    reasons = conn.execute(
        sa.select(ledger.c.status, ledger.c.last_reply, sa.func.count().label("n"))
        .where(
            where,
            ledger.c.status.not_in([LedgerStatus.SENT, LedgerStatus.PENDING]),
            ledger.c.last_reply.is_not(None),
        )
        .group_by(ledger.c.status, ledger.c.last_reply)
        .order_by(sa.desc("n"))
        .limit(_REASONS)
    )
    return SendRecord(
        subject=str(row.subject),
        content_sha256=str(row.content_sha256),
        counts=counts,
        first_sent_at=first,
        last_sent_at=last,
        runs=tuple(
            RunRecord(
                run.id,
                run.host,
                run.pid,
                run.started_at,
                run.finished_at,
                run.finished_at is None and alive(run, host, now),
            )
            for run in run_rows
        ),
        reasons=tuple((LedgerStatus(s), str(reply), int(n)) for s, reply, n in reasons),
        corrections=tuple(
            Correction(fix.made_at, fix.readers_before, fix.replaced_sha256, fix.content_sha256)
            for fix in conn.execute(
                sa.select(corrections)
                .where(corrections.c.issue_id == row.id)
                .order_by(corrections.c.made_at)
            )
        ),
    )


def _review(row: sa.Row[tuple[object, ...]] | None) -> ReviewRecord:
    if row is None:
        return ReviewRecord()
    return ReviewRecord(
        row.approved_sha256, row.approved_at, row.test_sent_sha256, row.test_sent_at
    )


def issue_records(
    engine: Engine, as_ofs: set[date], now: datetime, *, only: date | None = None
) -> dict[date, IssueRecord]:
    """The record of each issue in `as_ofs` and of every issue the database knows, by as-of;
    with `only`, of that one issue alone (one issue's queries, not every issue's)."""
    issue_query, review_query = sa.select(issues), sa.select(reviews)
    if only is not None:
        issue_query = issue_query.where(issues.c.as_of == only)
        review_query = review_query.where(reviews.c.as_of == only)
    with reader(engine) as conn:
        sends = {row.as_of: _send(conn, row, now) for row in conn.execute(issue_query).all()}
        approvals = {row.as_of: row for row in conn.execute(review_query)}
    return {
        as_of: IssueRecord(as_of, sends.get(as_of), _review(approvals.get(as_of)))
        for as_of in as_ofs | set(sends) | set(approvals)
    }


def delivered_issues(engine: Engine) -> set[date]:
    """The as-ofs of the issues that reached at least one reader (one indexed probe per
    issue, not a scan of every sent message)."""
    sent = (
        sa.select(ledger.c.issue_id)
        .where(ledger.c.issue_id == issues.c.id, ledger.c.status == LedgerStatus.SENT)
        .exists()
    )
    with reader(engine) as conn:
        return {row.as_of for row in conn.execute(sa.select(issues.c.as_of).where(sent))}
