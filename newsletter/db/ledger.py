"""The send ledger: issues, send runs and one row per (issue, subscriber).

pending -> claimed -> sent | deferred | bounced | failed | skipped. A claim is committed before
the message goes out and the result right after the server answers, so a killed run leaves at
most its in-flight messages claimed; the next run reclaims them from the dead run and sends them
again with the same Message-ID.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.db.schema import (
    corrections,
    insert_or_skip,
    issues,
    ledger,
    reader,
    subscribers,
    writing,
)
from newsletter.errors import IssueChangedError
from newsletter.models import (
    UNFINISHED,
    Delivery,
    LedgerStatus,
    Outcome,
    SubscriberStatus,
)

INTENT = ""
"""The content digest of an issue whose send was asked for and not yet built (a placeholder)."""


def record_issue(
    engine: Engine,
    as_of: date,
    subject: str,
    content_sha256: str,
    now: datetime,
    *,
    corrected: bool = False,
) -> int:
    """The issue's id; the first send freezes its content. A changed build is refused once
    readers have the issue, unless `corrected`: then it becomes the content the rest get."""
    with engine.begin() as conn:
        conn.execute(  # a sender racing this one may have just added it
            insert_or_skip(conn, issues, ["as_of"]).values(
                as_of=as_of, subject=subject, content_sha256=content_sha256, created_at=now
            )
        )
        row = conn.execute(sa.select(issues).where(issues.c.as_of == as_of)).one()
        if row.content_sha256 == content_sha256:
            return int(row.id)
        sent = conn.execute(
            sa.select(sa.func.count()).where(
                ledger.c.issue_id == row.id, ledger.c.status == LedgerStatus.SENT
            )
        ).scalar_one()
        if sent and not corrected:
            raise IssueChangedError(
                f"issue {as_of.isoformat()} changed since {sent} reader(s) received it"
            )
        if sent:
            conn.execute(
                corrections.insert().values(
                    issue_id=row.id,
                    made_at=now,
                    replaced_sha256=row.content_sha256,
                    content_sha256=content_sha256,
                    readers_before=sent,
                )
            )
        conn.execute(
            issues.update()
            .where(issues.c.id == row.id)
            .values(subject=subject, content_sha256=content_sha256)
        )
        return int(row.id)


def cancel_rest(engine: Engine, as_of: date, now: datetime) -> int:
    """Mark every message of the issue for `as_of` that is still to be tried skipped (the
    editor's choice to mail nobody else); messages in flight finish. Returns how many."""
    with engine.begin() as conn:
        found = conn.execute(
            sa.select(issues.c.id, issues.c.content_sha256).where(issues.c.as_of == as_of)
        ).first()
        if found is None:
            return 0
        if found.content_sha256 == INTENT:  # begun, never built: nothing was enqueued
            conn.execute(issues.delete().where(issues.c.id == found.id))
            return 0
        return int(
            conn.execute(
                ledger.update()
                .where(
                    ledger.c.issue_id == found.id,
                    ledger.c.status.in_([LedgerStatus.PENDING, LedgerStatus.DEFERRED]),
                )
                .values(
                    status=LedgerStatus.SKIPPED,
                    last_reply="the editor cancelled the rest of this issue's send",
                    next_attempt_at=None,
                    updated_at=now,
                )
            ).rowcount
        )


def note_send_intent(engine: Engine, as_of: date, now: datetime) -> None:
    """Remember that a send of the issue for `as_of` began, before it is built: a send killed
    during its build is then still found by `send --resume`."""
    with engine.begin() as conn:
        conn.execute(
            insert_or_skip(conn, issues, ["as_of"]).values(
                as_of=as_of, subject="", content_sha256=INTENT, created_at=now
            )
        )


def latest_unfinished_issue(engine: Engine) -> date | None:
    """The as-of of the newest issue whose send is unfinished, for `send --resume`: messages
    not yet sent, or a send that began and never filled its ledger, if no later issue was sent
    since (an abandoned attempt at an old issue is not mailed to the list by a resume)."""
    filled = sa.select(sa.func.max(issues.c.as_of)).where(
        sa.select(ledger.c.issue_id).where(ledger.c.issue_id == issues.c.id).exists()
    )
    with reader(engine) as conn:
        newest_filled = conn.execute(filled).scalar_one_or_none()
        begun = issues.c.content_sha256 == INTENT
        if newest_filled is not None:
            begun = sa.and_(begun, issues.c.as_of > newest_filled)
        row = conn.execute(
            sa.select(issues.c.as_of)
            .where(sa.or_(begun, _waiting()))
            .order_by(issues.c.as_of.desc())
            .limit(1)
        ).first()
    return None if row is None else row.as_of


def _waiting() -> sa.Exists:
    """An issue (correlated) has messages that will still be tried."""
    return (
        sa.select(ledger.c.issue_id)
        .where(ledger.c.issue_id == issues.c.id, ledger.c.status.in_(UNFINISHED))
        .exists()
    )


def unfinished(engine: Engine, as_of: date) -> bool:
    """Whether the send of the issue for `as_of` began and has messages that will still be
    tried (or never filled its ledger)."""
    with reader(engine) as conn:
        row = conn.execute(
            sa.select(issues.c.id).where(
                issues.c.as_of == as_of,
                sa.or_(issues.c.content_sha256 == INTENT, _waiting()),
            )
        ).first()
    return row is not None


def active_readers(engine: Engine, as_of: date) -> Iterator[tuple[str, str, bool]]:
    """(email, name, done) of every active subscriber, oldest first, streamed: done when their
    message of the issue for `as_of` needs no more sending."""
    issue = sa.select(issues.c.id).where(issues.c.as_of == as_of).scalar_subquery()
    done = sa.exists().where(
        ledger.c.issue_id == issue,
        ledger.c.subscriber_id == subscribers.c.id,
        ledger.c.status.not_in(UNFINISHED),
    )
    query = (
        sa.select(subscribers.c.email, subscribers.c.name, done.label("done"))
        .where(subscribers.c.status == SubscriberStatus.ACTIVE)
        .order_by(subscribers.c.id)
    )
    with reader(engine) as conn:
        for row in conn.execution_options(yield_per=1000).execute(query):
            yield row.email, row.name, bool(row.done)


def enqueue_audience(
    engine: Engine,
    issue_id: int,
    message_id: Callable[[str], str],
    now: datetime,
    batch: int = 1000,
) -> int:
    """Add a pending ledger row for every active subscriber the issue has no row for yet.

    `message_id(email)` gives each row its fixed Message-ID. Returns how many rows were added.
    """
    known = sa.exists().where(  # one index look-up a subscriber, where NOT IN lists them all
        ledger.c.issue_id == issue_id, ledger.c.subscriber_id == subscribers.c.id
    )
    added, last_id = 0, 0
    while True:
        with engine.begin() as conn:
            chunk = conn.execute(
                sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.name)
                .where(
                    subscribers.c.id > last_id,
                    subscribers.c.status == SubscriberStatus.ACTIVE,
                    ~known,
                )
                .order_by(subscribers.c.id)
                .limit(batch)
            ).all()
            if not chunk:
                return added
            conn.execute(  # rows a racing sender enqueued first are skipped
                insert_or_skip(conn, ledger, ["issue_id", "subscriber_id"]),
                [
                    {
                        "issue_id": issue_id,
                        "subscriber_id": row.id,
                        "email": row.email,
                        "name": row.name,
                        "message_id": message_id(row.email),
                        "status": LedgerStatus.PENDING,
                        "attempts": 0,
                        "updated_at": now,
                    }
                    for row in chunk
                ],
            )
        added += len(chunk)
        last_id = chunk[-1].id


_DUE = (
    sa.select(
        ledger.c.subscriber_id,
        ledger.c.email,
        ledger.c.name,
        ledger.c.message_id,
        ledger.c.attempts,
        subscribers.c.status.label("subscriber_status"),
    )
    .join(subscribers, subscribers.c.id == ledger.c.subscriber_id)
    .where(
        ledger.c.issue_id == sa.bindparam("issue"),
        ledger.c.status == LedgerStatus.PENDING,
        sa.or_(ledger.c.next_attempt_at.is_(None), ledger.c.next_attempt_at <= sa.bindparam("due")),
    )
    .order_by(ledger.c.subscriber_id)
    .limit(sa.bindparam("most", type_=sa.Integer))
    .with_for_update(skip_locked=True, of=ledger)
)
_OF_THESE = (
    ledger.c.issue_id == sa.bindparam("issue"),
    ledger.c.subscriber_id.in_(sa.bindparam("ids", expanding=True)),
)
_SKIP = (
    ledger.update()
    .where(*_OF_THESE)
    .values(
        status=LedgerStatus.SKIPPED,
        last_reply="subscriber no longer active",
        updated_at=sa.bindparam("now"),
    )
)
_CLAIM = (
    ledger.update()
    .where(*_OF_THESE, ledger.c.status == LedgerStatus.PENDING)
    .values(
        status=LedgerStatus.CLAIMED,
        claimed_by=sa.bindparam("run"),
        attempts=ledger.c.attempts + 1,
        updated_at=sa.bindparam("now"),
    )
)
"""A claim's three statements, built once: building them anew cost ten times their run."""


def claim(
    bind: Engine | Connection, issue_id: int, run_id: int, limit: int, now: datetime
) -> list[Delivery]:
    """Claim up to `limit` due messages for `run_id`; rows of people who left are skipped."""
    with writing(bind) as conn:
        rows = conn.execute(_DUE, {"issue": issue_id, "due": now, "most": limit}).all()
        gone = [
            row.subscriber_id for row in rows if row.subscriber_status != SubscriberStatus.ACTIVE
        ]
        if gone:
            conn.execute(_SKIP, {"issue": issue_id, "ids": gone, "now": now})
        wanted = [row for row in rows if row.subscriber_status == SubscriberStatus.ACTIVE]
        if wanted:
            ids = [row.subscriber_id for row in wanted]
            conn.execute(_CLAIM, {"issue": issue_id, "ids": ids, "run": run_id, "now": now})
    return [
        Delivery(row.subscriber_id, row.email, row.name, row.message_id, row.attempts + 1)
        for row in wanted
    ]


def next_due(engine: Engine, issue_id: int) -> datetime | None:
    """When the earliest pending retry of this issue falls due (None: nothing is waiting)."""
    with reader(engine) as conn:
        return conn.execute(
            sa.select(sa.func.min(ledger.c.next_attempt_at)).where(
                ledger.c.issue_id == issue_id, ledger.c.status == LedgerStatus.PENDING
            )
        ).scalar_one_or_none()


_RECORD = (
    ledger.update()
    .where(
        ledger.c.issue_id == sa.bindparam("issue"),
        ledger.c.subscriber_id == sa.bindparam("subscriber"),
    )
    .values(
        status=sa.bindparam("status"),
        last_reply=sa.bindparam("reply"),
        claimed_by=None,
        next_attempt_at=sa.bindparam("retry_at"),
        updated_at=sa.bindparam("now"),
        sent_at=sa.bindparam("sent_at"),
    )
)
"""One prepared statement for every result: it is compiled once, which keeps a record cheap."""


def record(
    bind: Engine | Connection, issue_id: int, outcomes: Sequence[Outcome], now: datetime
) -> None:
    """Write the results of sent or refused messages (one transaction for all of them)."""
    rows = [
        {
            "issue": issue_id,
            "subscriber": outcome.subscriber_id,
            "status": outcome.status,
            "reply": outcome.reply[:1000],
            "retry_at": outcome.retry_at,
            "now": now,
            "sent_at": now if outcome.status == LedgerStatus.SENT else None,
        }
        for outcome in outcomes
    ]
    bounced = [outcome.subscriber_id for outcome in outcomes if outcome.bounce_subscriber]
    with writing(bind) as conn:
        conn.execute(_RECORD, rows)
        if bounced:
            conn.execute(
                subscribers.update()
                .where(subscribers.c.id.in_(bounced))
                .values(status=SubscriberStatus.BOUNCED, updated_at=now)
            )


def reopen(engine: Engine, issue_id: int, subscriber_ids: Sequence[int], now: datetime) -> None:
    """Undo refusals recorded in error (the fault was the server's or the message's): the
    messages are pending again, and subscribers marked bounced by them are active again."""
    ids = list(subscriber_ids)
    with engine.begin() as conn:
        bounced = sa.select(ledger.c.subscriber_id).where(
            ledger.c.issue_id == issue_id,
            ledger.c.subscriber_id.in_(ids),
            ledger.c.status == LedgerStatus.BOUNCED,
        )
        conn.execute(
            subscribers.update()
            .where(
                subscribers.c.id.in_(bounced),
                subscribers.c.status == SubscriberStatus.BOUNCED,
            )
            .values(status=SubscriberStatus.ACTIVE, updated_at=now)
        )
        conn.execute(
            ledger.update()
            .where(
                ledger.c.issue_id == issue_id,
                ledger.c.subscriber_id.in_(ids),
                ledger.c.status.in_([LedgerStatus.BOUNCED, LedgerStatus.FAILED]),
            )
            .values(status=LedgerStatus.PENDING, claimed_by=None, updated_at=now)
        )


def ledger_counts(engine: Engine, issue_id: int) -> dict[LedgerStatus, int]:
    """How many of the issue's messages are in each status."""
    with reader(engine) as conn:
        rows = conn.execute(
            sa.select(ledger.c.status, sa.func.count())
            .where(ledger.c.issue_id == issue_id)
            .group_by(ledger.c.status)
        )
        return {LedgerStatus(status): int(count) for status, count in rows}
