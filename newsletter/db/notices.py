"""Notices in the database: confirmation and welcome mails, claimed and recorded like an issue's
ledger rows (pending -> claimed -> sent | deferred | bounced | failed | skipped).

At most one notice of a subscriber is unfinished at a time (a unique partial index), so the
subscriber id names the notice a sender holds, as it names an issue's message. A confirmation
is skipped when its subscriber is active by then (confirmed by another link), a welcome when
its subscriber is not active any more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.db.schema import new_id, notices, reader, subscribers
from newsletter.models import (
    UNFINISHED,
    Delivery,
    LedgerStatus,
    NoticeKind,
    Outcome,
    SubscriberStatus,
)


@dataclass(frozen=True, slots=True)
class Notice:
    """A claimed notice: what to send, to whom, and the link's notice id."""

    id: int
    kind: NoticeKind
    delivery: Delivery
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Recipient:
    """Whom a notice goes to: the subscriber's id, address and name."""

    id: int
    email: str
    name: str


def enqueue(
    conn: Connection,
    *,
    to: Recipient,
    kind: NoticeKind,
    source: str,
    message_id: str,
    now: datetime,
) -> int | None:
    """Queue a notice for `to` in the caller's transaction; None if one of theirs is
    unfinished already (it goes instead: ux_notices_one_unfinished allows one)."""
    try:
        with conn.begin_nested():  # a racing signup may have queued one a moment ago
            return new_id(
                conn.execute(
                    notices.insert().values(
                        subscriber_id=to.id,
                        kind=kind,
                        email=to.email,
                        name=to.name,
                        source=source[:200],
                        message_id=message_id,
                        status=LedgerStatus.PENDING,
                        attempts=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
            )
    except sa.exc.IntegrityError:
        return None


def _unwanted(kind: str, status: str) -> bool:
    if kind == NoticeKind.CONFIRM:
        return status == SubscriberStatus.ACTIVE
    return status != SubscriberStatus.ACTIVE


def claim(engine: Engine, run_id: int, limit: int, now: datetime) -> list[Notice]:
    """Claim up to `limit` due notices for `run_id`; those no longer wanted are skipped."""
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(notices, subscribers.c.status.label("subscriber_status"))
            .join(subscribers, subscribers.c.id == notices.c.subscriber_id)
            .where(
                notices.c.status == LedgerStatus.PENDING,
                sa.or_(notices.c.next_attempt_at.is_(None), notices.c.next_attempt_at <= now),
            )
            .order_by(notices.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=notices)
        ).all()
        unwanted = [row.id for row in rows if _unwanted(row.kind, row.subscriber_status)]
        wanted = [row for row in rows if row.id not in unwanted]
        if unwanted:
            conn.execute(
                notices.update()
                .where(notices.c.id.in_(unwanted))
                .values(status=LedgerStatus.SKIPPED, last_reply="no longer wanted", updated_at=now)
            )
        if wanted:
            conn.execute(
                notices.update()
                .where(notices.c.id.in_([row.id for row in wanted]))
                .values(
                    status=LedgerStatus.CLAIMED,
                    claimed_by=run_id,
                    attempts=notices.c.attempts + 1,
                    updated_at=now,
                )
            )
    return [
        Notice(
            row.id,
            NoticeKind(row.kind),
            Delivery(row.subscriber_id, row.email, row.name, row.message_id, row.attempts + 1),
            row.created_at,
        )
        for row in wanted
    ]


def record(engine: Engine, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Write the results of claimed notices. A refusal is recorded on the notice only: a
    confirmation nobody can receive is never confirmed, and the owner of a welcome just used
    their mailbox (an issue's own refusal is what marks a subscriber bounced)."""
    with engine.begin() as conn:
        for outcome in outcomes:
            conn.execute(
                notices.update()
                .where(
                    notices.c.subscriber_id == outcome.subscriber_id,
                    notices.c.status == LedgerStatus.CLAIMED,
                )
                .values(
                    status=outcome.status,
                    last_reply=outcome.reply[:1000],
                    claimed_by=None,
                    next_attempt_at=outcome.retry_at,
                    updated_at=now,
                    sent_at=now if outcome.status == LedgerStatus.SENT else None,
                )
            )


def reopen(engine: Engine, subscriber_ids: Sequence[int], now: datetime) -> None:
    """Undo refusals recorded in error (the server's or the message's fault): the subscribers'
    newest notices refused are pending again (unless a newer one of theirs is on its way)."""
    other = notices.alias("other")
    on_its_way = (
        sa.select(other.c.id)
        .where(other.c.subscriber_id == notices.c.subscriber_id, other.c.status.in_(UNFINISHED))
        .exists()
    )
    newest = (
        sa.select(sa.func.max(notices.c.id))
        .where(notices.c.subscriber_id.in_(list(subscriber_ids)))
        .group_by(notices.c.subscriber_id)
    )
    with engine.begin() as conn:
        conn.execute(
            notices.update()
            .where(
                notices.c.id.in_(newest),
                notices.c.status.in_([LedgerStatus.BOUNCED, LedgerStatus.FAILED]),
                ~on_its_way,
            )
            .values(status=LedgerStatus.PENDING, claimed_by=None, updated_at=now)
        )


def next_due(engine: Engine) -> datetime | None:
    """When the earliest pending retry of a notice falls due (None: nothing is waiting)."""
    with reader(engine) as conn:
        return conn.execute(
            sa.select(sa.func.min(notices.c.next_attempt_at)).where(
                notices.c.status == LedgerStatus.PENDING
            )
        ).scalar_one_or_none()


def due_count(engine: Engine, now: datetime) -> tuple[int, int]:
    """(notices claimable now, notices claimed): a cheap look before starting a run."""
    due = sa.and_(
        notices.c.status == LedgerStatus.PENDING,
        sa.or_(notices.c.next_attempt_at.is_(None), notices.c.next_attempt_at <= now),
    )
    with reader(engine) as conn:
        pending, claimed = conn.execute(
            sa.select(
                sa.func.count().filter(due),
                sa.func.count().filter(notices.c.status == LedgerStatus.CLAIMED),
            )
        ).one()
    return int(pending), int(claimed)


def retry_deferred(engine: Engine, before: datetime, now: datetime) -> int:
    """Notices deferred before `before` get a fresh set of attempts; returns how many."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                notices.update()
                .where(notices.c.status == LedgerStatus.DEFERRED, notices.c.updated_at < before)
                .values(
                    status=LedgerStatus.PENDING, attempts=0, next_attempt_at=None, updated_at=now
                )
            ).rowcount
        )


def notice_counts(engine: Engine) -> dict[LedgerStatus, int]:
    """How many notices are in each status."""
    with reader(engine) as conn:
        rows = conn.execute(sa.select(notices.c.status, sa.func.count()).group_by(notices.c.status))
        return {LedgerStatus(status): int(n) for status, n in rows}
