"""The bounce mailbox's bookkeeping: which messages were read, what they said about whom, and
the soft-bounce rule.

Each message is recorded once together with its effect, in one transaction: a second reader
of the same mailbox, or a crash half-way, never applies a message twice. A subscriber's status
changes only from active, and every change is a subscriber_events row naming what made it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.db.audience import retire_subscriber
from newsletter.db.schema import (
    bounce_events,
    insert_or_skip,
    issues,
    ledger,
    mailbox_messages,
    naive,
    reader,
    subscriber_events,
    subscribers,
)
from newsletter.models import InboundKind, SubscriberStatus, address_key

KEYS_PER_QUERY = 500


@dataclass(frozen=True, slots=True)
class ReadMessage:
    """One message as read from a mailbox."""

    mailbox: str
    key: str
    digest: str
    received_at: datetime | None


@dataclass(frozen=True, slots=True)
class BounceEvent:
    """What a message said about one subscriber, and the status it moves them to (None: it
    is recorded only). A soft event moves them only at the soft-bounce limit."""

    subscriber_id: int
    email: str
    issue_id: int | None
    kind: InboundKind
    at: datetime
    detail: str
    status: SubscriberStatus | None
    by: str


@dataclass(frozen=True, slots=True)
class SoftRule:
    """`limit` soft bounces (of distinct issues) within `days` days bounce a subscriber."""

    limit: int
    days: int


@dataclass(frozen=True, slots=True)
class SentMessage:
    """The message of an issue to a subscriber, as the send ledger has it."""

    issue_id: int
    subscriber_id: int
    email: str
    as_of: date


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording a message did: the subscriber's new status (None: unchanged) and who
    made the change, and for a soft bounce how many count towards the limit now."""

    changed: SubscriberStatus | None = None
    soft_count: int = 0
    by: str = ""


def unread(engine: Engine, mailbox: str, keys: Sequence[str]) -> list[str]:
    """The keys (in the given order) of the mailbox's messages not recorded yet."""
    seen: set[str] = set()
    with reader(engine) as conn:
        for start in range(0, len(keys), KEYS_PER_QUERY):
            chunk = list(keys[start : start + KEYS_PER_QUERY])
            seen.update(
                conn.execute(
                    sa.select(mailbox_messages.c.message_key).where(
                        mailbox_messages.c.mailbox == mailbox,
                        mailbox_messages.c.message_key.in_(chunk),
                    )
                ).scalars()
            )
    return [key for key in keys if key not in seen]


def read_before(engine: Engine, digest: str) -> bool:
    """Whether a message with these bytes was recorded already (from any mailbox)."""
    with reader(engine) as conn:
        found = conn.execute(
            sa.select(mailbox_messages.c.digest).where(mailbox_messages.c.digest == digest).limit(1)
        ).first()
    return found is not None


def sent_message(engine: Engine, issue_id: int, subscriber_id: int) -> SentMessage | None:
    """The ledger's message of `issue_id` to `subscriber_id` (None: it has none)."""
    with reader(engine) as conn:
        row = conn.execute(
            sa.select(ledger.c.subscriber_id, ledger.c.email, issues.c.as_of)
            .join(issues, issues.c.id == ledger.c.issue_id)
            .where(ledger.c.issue_id == issue_id, ledger.c.subscriber_id == subscriber_id)
        ).first()
    if row is None:
        return None
    return SentMessage(issue_id, row.subscriber_id, row.email, row.as_of)


def find_subscriber(engine: Engine, email: str) -> tuple[int, SubscriberStatus] | None:
    """(id, status) of the subscriber with this address (any case), or None."""
    with reader(engine) as conn:
        row = conn.execute(
            sa.select(subscribers.c.id, subscribers.c.status).where(
                subscribers.c.email_key == address_key(email)
            )
        ).first()
    return None if row is None else (int(row.id), SubscriberStatus(row.status))


def _soft_count(conn: Connection, event: BounceEvent, rule: SoftRule) -> int:
    """The most distinct issues with a soft bounce within any `rule.days` window that holds
    this event, counting only bounces since the subscriber was last made active again."""
    window = timedelta(days=rule.days)
    since = conn.execute(
        sa.select(sa.func.max(subscriber_events.c.at)).where(
            subscriber_events.c.subscriber_id == event.subscriber_id,
            subscriber_events.c.status == SubscriberStatus.ACTIVE,
        )
    ).scalar_one_or_none()
    rows = conn.execute(
        sa.select(bounce_events.c.issue_id, bounce_events.c.at).where(
            bounce_events.c.subscriber_id == event.subscriber_id,
            bounce_events.c.kind == InboundKind.SOFT,
            bounce_events.c.at >= event.at - window,
            bounce_events.c.at <= event.at + window,
        )
    ).all()
    floor = naive(since) if since is not None else None
    found = sorted(
        (naive(row.at), row.issue_id) for row in rows if floor is None or naive(row.at) > floor
    )
    at = naive(event.at)
    return max(
        (
            len({issue for when, issue in found if start <= when <= start + window})
            for start, _ in found
            if start <= at <= start + window
        ),
        default=0,
    )


def record(
    engine: Engine,
    message: ReadMessage,
    outcome: InboundKind,
    detail: str,
    now: datetime,
    *,
    event: BounceEvent | None = None,
    rule: SoftRule | None = None,
) -> Recorded | None:
    """Record a message read and apply its event; None if it was recorded already (by
    another reader of the same mailbox)."""
    with engine.begin() as conn:
        inserted = conn.execute(
            insert_or_skip(conn, mailbox_messages, ["mailbox", "message_key"]).values(
                mailbox=message.mailbox,
                message_key=message.key,
                digest=message.digest,
                received_at=message.received_at,
                processed_at=now,
                outcome=outcome,
                detail=detail[:1000],
            )
        ).rowcount
        if not inserted:
            return None
        if event is None:
            return Recorded()
        conn.execute(
            bounce_events.insert().values(
                subscriber_id=event.subscriber_id,
                issue_id=event.issue_id,
                kind=event.kind,
                at=event.at,
                detail=event.detail[:1000],
                mailbox=message.mailbox,
                message_key=message.key,
            )
        )
        return _apply(conn, event, rule, now)


def _apply(conn: Connection, event: BounceEvent, rule: SoftRule | None, now: datetime) -> Recorded:
    soft = 0
    by = event.by
    if event.kind is InboundKind.SOFT:
        if rule is None:
            return Recorded()
        soft = _soft_count(conn, event, rule)
        if soft < rule.limit:
            return Recorded(None, soft)
        by = f"{by} ({soft} soft bounces within {rule.days} days)"
    if event.status is None:
        return Recorded(None, soft)
    changed = retire_subscriber(conn, event.subscriber_id, event.status, by, now)
    return Recorded(event.status if changed else None, soft, by)


def message_counts(engine: Engine) -> tuple[dict[InboundKind, int], datetime | None]:
    """How many messages were read, by what they were, and when the last one was."""
    with reader(engine) as conn:
        rows = conn.execute(
            sa.select(
                mailbox_messages.c.outcome,
                sa.func.count(),
                sa.func.max(mailbox_messages.c.processed_at),
            ).group_by(mailbox_messages.c.outcome)
        ).all()
    last = max((row[2] for row in rows if row[2] is not None), default=None)
    return {InboundKind(row[0]): int(row[1]) for row in rows}, last


def event_counts(engine: Engine, as_of: date | None = None) -> dict[InboundKind, int]:
    """Bounce events by kind: all of them, or those about the issue for `as_of`."""
    query = sa.select(bounce_events.c.kind, sa.func.count()).group_by(bounce_events.c.kind)
    if as_of is not None:
        query = query.join(issues, issues.c.id == bounce_events.c.issue_id).where(
            issues.c.as_of == as_of
        )
    with reader(engine) as conn:
        return {InboundKind(kind): int(count) for kind, count in conn.execute(query)}


def subscriber_bounces(engine: Engine, email: str) -> list[tuple[datetime, InboundKind, str]]:
    """(when, kind, detail) of every bounce event of the subscriber with this address."""
    with reader(engine) as conn:
        rows = conn.execute(
            sa.select(bounce_events.c.at, bounce_events.c.kind, bounce_events.c.detail)
            .join(subscribers, subscribers.c.id == bounce_events.c.subscriber_id)
            .where(subscribers.c.email_key == address_key(email))
            .order_by(bounce_events.c.at, bounce_events.c.id)
        ).all()
    return [(row.at, InboundKind(row.kind), row.detail) for row in rows]
