"""Signups with double opt-in in the database: the attempt and its rate limits, the confirmation
it queues, the confirmation itself, expiry of unconfirmed signups, and erasing a person.

A signup never changes what the list knows of an address until its owner confirms: a new
address is added unconfirmed (never mailed an issue); one that left keeps its status; an active
one gets nothing (the answer is the same, so nobody learns who is subscribed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.db.audience import address_hash, note_event
from newsletter.db.notices import Recipient, enqueue
from newsletter.db.schema import (
    bounce_events,
    ledger,
    mailbox_messages,
    notices,
    signup_attempts,
    subscriber_events,
    subscribers,
    suppressions,
)
from newsletter.models import (
    UNFINISHED,
    JoinMethod,
    LedgerStatus,
    NoticeKind,
    SubscriberStatus,
    address_key,
)

ATTEMPTS_KEPT = timedelta(days=1)


class SignupOutcome(StrEnum):
    """What a signup did (the person who asked is told the same for all but `limited`)."""

    QUEUED = "queued"
    """A confirmation mail is on its way."""
    WAITING = "waiting"
    """Nothing new: one is on its way already, or the address had its share for the day."""
    ACTIVE = "active"
    """Subscribed already: nothing is sent."""
    LIMITED = "limited"
    """Too many signups from this client within the hour: refused."""


@dataclass(frozen=True, slots=True)
class SignupRequest:
    """One signup as the form sent it, with the keyed hash of the client's address."""

    email: str
    name: str
    page: str
    client: str
    message_id: str


@dataclass(frozen=True, slots=True)
class Limits:
    per_client_per_hour: int
    per_address_per_day: int


def sign_up(engine: Engine, request: SignupRequest, limits: Limits, now: datetime) -> SignupOutcome:
    """Record a signup and queue its confirmation, within the limits."""
    key = address_key(request.email)
    with engine.begin() as conn:
        conn.execute(signup_attempts.delete().where(signup_attempts.c.at < now - ATTEMPTS_KEPT))
        if _recent(
            conn, signup_attempts.c.client_sha256 == request.client, now - timedelta(hours=1)
        ) >= (limits.per_client_per_hour):
            return SignupOutcome.LIMITED
        conn.execute(
            signup_attempts.insert().values(
                client_sha256=request.client, address_sha256=address_hash(key), at=now
            )
        )
        found = _subscriber(conn, key)
        if found is None:
            found = _add_unconfirmed(conn, request, key, now)
        elif found.status == SubscriberStatus.ACTIVE:
            return SignupOutcome.ACTIVE
        sent_today = conn.execute(
            sa.select(sa.func.count()).where(
                notices.c.subscriber_id == found.id,
                notices.c.kind == NoticeKind.CONFIRM,
                notices.c.created_at >= now - timedelta(days=1),
            )
        ).scalar_one()
        if sent_today >= limits.per_address_per_day:
            return SignupOutcome.WAITING
        queued = enqueue(
            conn,
            to=Recipient(found.id, found.email, found.name),
            kind=NoticeKind.CONFIRM,
            source=request.page,
            message_id=request.message_id,
            now=now,
        )
        return SignupOutcome.WAITING if queued is None else SignupOutcome.QUEUED


def _recent(conn: Connection, which: sa.ColumnElement[bool], since: datetime) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(which, signup_attempts.c.at >= since)
        ).scalar_one()
    )


def _subscriber(conn: Connection, key: str) -> Any | None:
    return conn.execute(
        sa.select(
            subscribers.c.id, subscribers.c.email, subscribers.c.name, subscribers.c.status
        ).where(subscribers.c.email_key == key)
    ).first()


def _add_unconfirmed(conn: Connection, request: SignupRequest, key: str, now: datetime) -> Any:
    conn.execute(
        subscribers.insert().values(
            email=request.email,
            email_key=key,
            name=request.name,
            status=SubscriberStatus.UNCONFIRMED,
            source=request.page[:200],
            created_at=now,
            updated_at=now,
            joined_via=JoinMethod.SIGNUP,
        )
    )
    found = _subscriber(conn, key)
    assert found is not None  # just added, in this transaction
    return found


class Confirmation(StrEnum):
    """What a confirmation link does or did."""

    CONFIRMED = "confirmed"
    ALREADY = "already"
    """Used before, or the subscriber is active anyway: nothing changes."""
    STALE = "stale"
    """The subscriber's status changed after the link was made (they left): a new signup."""
    INVALID = "invalid"
    """No such confirmation (expired and erased, or never made)."""


@dataclass(frozen=True, slots=True)
class Pending:
    """A confirmation link's notice as the database has it."""

    notice_id: int
    to: Recipient
    source: str
    created_at: datetime
    state: Confirmation


def confirmation(conn: Connection, notice_id: int) -> Pending | None:
    """What the confirmation notice `notice_id` would do if used now."""
    row = conn.execute(
        sa.select(notices, subscribers.c.status.label("subscriber_status"))
        .join(subscribers, subscribers.c.id == notices.c.subscriber_id)
        .where(notices.c.id == notice_id, notices.c.kind == NoticeKind.CONFIRM)
    ).first()
    if row is None:
        return None
    changed_since = conn.execute(
        sa.select(subscriber_events.c.id).where(
            subscriber_events.c.subscriber_id == row.subscriber_id,
            subscriber_events.c.at > row.created_at,
        )
    ).first()
    if row.used_at is not None or row.subscriber_status == SubscriberStatus.ACTIVE:
        state = Confirmation.ALREADY
    elif changed_since is not None:
        state = Confirmation.STALE
    else:
        state = Confirmation.CONFIRMED
    to = Recipient(row.subscriber_id, row.email, row.name)
    return Pending(row.id, to, row.source, row.created_at, state)


def peek(engine: Engine, notice_id: int) -> Pending | None:
    """`confirmation`, read only."""
    with engine.connect() as conn:
        return confirmation(conn, notice_id)


def confirm(
    engine: Engine, notice_id: int, welcome_message_id: str, now: datetime
) -> Pending | None:
    """Use a confirmation link: its subscriber is active from now, with their consent recorded,
    and a welcome mail is queued. What it did is the answer's `state`."""
    with engine.begin() as conn:
        found = confirmation(conn, notice_id)
        if found is None or found.state != Confirmation.CONFIRMED:
            return found
        to = found.to
        conn.execute(
            subscribers.update()
            .where(subscribers.c.id == to.id)
            .values(
                status=SubscriberStatus.ACTIVE,
                joined_via=JoinMethod.SIGNUP,
                source=found.source,
                confirmed_at=now,
                updated_at=now,
            )
        )
        note_event(conn, to.id, SubscriberStatus.ACTIVE, "their confirmation link", now)
        _settle_confirmations(conn, to.id, notice_id, now)
        conn.execute(
            suppressions.delete().where(suppressions.c.address_sha256 == address_hash(to.email))
        )
        enqueue(
            conn,
            to=to,
            kind=NoticeKind.WELCOME,
            source=found.source,
            message_id=welcome_message_id,
            now=now,
        )
    return found


def _settle_confirmations(conn: Connection, subscriber_id: int, used: int, now: datetime) -> None:
    """The link used proves its mail arrived (sent, whatever its row said); a later one still
    on its way is not needed any more (skipped)."""
    conn.execute(
        notices.update()
        .where(notices.c.id == used)
        .values(
            used_at=now,
            status=sa.case(
                (notices.c.status.in_(UNFINISHED), LedgerStatus.SENT), else_=notices.c.status
            ),
            claimed_by=None,
            updated_at=now,
        )
    )
    conn.execute(
        notices.update()
        .where(
            notices.c.subscriber_id == subscriber_id,
            notices.c.kind == NoticeKind.CONFIRM,
            notices.c.status.in_([LedgerStatus.PENDING, LedgerStatus.DEFERRED]),
        )
        .values(
            status=LedgerStatus.SKIPPED, last_reply="confirmed by an earlier link", updated_at=now
        )
    )


def expire_unconfirmed(engine: Engine, before: datetime) -> int:
    """Erase signups made before `before` and never confirmed; returns how many."""
    with engine.begin() as conn:
        ids = list(
            conn.execute(
                sa.select(subscribers.c.id).where(
                    subscribers.c.status == SubscriberStatus.UNCONFIRMED,
                    subscribers.c.created_at < before,
                    ~sa.select(notices.c.id)
                    .where(
                        notices.c.subscriber_id == subscribers.c.id,
                        notices.c.status == LedgerStatus.CLAIMED,
                    )
                    .exists(),
                )
            ).scalars()
        )
        _erase(conn, ids)
    return len(ids)


def _erase(conn: Connection, ids: list[int]) -> None:
    for table in (notices, subscriber_events, bounce_events, ledger):
        conn.execute(table.delete().where(table.c.subscriber_id.in_(ids)))
    conn.execute(subscribers.delete().where(subscribers.c.id.in_(ids)))


def forget(engine: Engine, email: str, now: datetime) -> bool:
    """Erase a person: their subscriber row, history, notices, bounce events, ledger rows and
    the bounce mailbox's notes that name them; a hash of the address stays on the suppression
    list. False if the address is unknown (it is suppressed anyway, so no import adds it)."""
    key = address_key(email)
    with engine.begin() as conn:
        found = _subscriber(conn, key)
        if found is not None:
            _erase(conn, [found.id])
        conn.execute(  # what the bounce mailbox's messages said of them names them too
            mailbox_messages.update()
            .where(sa.func.lower(mailbox_messages.c.detail).contains(key, autoescape=True))
            .values(detail="(erased: the person it named was forgotten)")
        )
        known = conn.execute(
            sa.select(suppressions.c.address_sha256).where(
                suppressions.c.address_sha256 == address_hash(key)
            )
        ).first()
        if known is None:
            conn.execute(
                suppressions.insert().values(
                    address_sha256=address_hash(key), reason="forgotten", at=now
                )
            )
    return found is not None
