"""Subscribers in the database: import, status changes and listing."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from newsletter.db.schema import (
    insert_or_skip,
    reader,
    subscriber_events,
    subscribers,
    suppressions,
)
from newsletter.models import JoinMethod, Subscriber, SubscriberStatus, address_key

LEFT = frozenset(
    {SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED}
)
"""Statuses of people who left the list: an import may set them, never undo them."""


def address_hash(address: str) -> str:
    """The suppression list's key of an address: its SHA-256, so the address itself is gone."""
    return hashlib.sha256(address_key(address).encode()).hexdigest()


@dataclass
class ImportReport:
    """What an import did: new addresses, names updated, people marked gone, rows left."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_inactive: int = 0
    """Rows that would have re-activated someone who left: never done by an import."""
    marked_inactive: int = 0
    """Active subscribers whose row says they left (unsubscribed, bounced, complained)."""
    suppressed: int = 0
    """Rows of people erased from the list (`subscribers forget`): never added again."""


def _new_row(
    subscriber: Subscriber, key: str, source: str, via: JoinMethod, now: datetime
) -> dict[str, object]:
    return {
        "email": subscriber.email,
        "email_key": key,
        "name": subscriber.name,
        "status": subscriber.status,
        "source": source[:200],
        "created_at": now,
        "updated_at": now,
        "joined_via": via,
    }


def _merge(found: Any, row: Subscriber) -> tuple[str, dict[str, object]]:
    """Which ImportReport count an existing subscriber's row adds to, and what it changes."""
    changes: dict[str, object] = {}
    if found.status == SubscriberStatus.ACTIVE and row.status in LEFT:
        outcome = "marked_inactive"
        changes["status"] = row.status
    elif found.status != SubscriberStatus.ACTIVE and row.status == SubscriberStatus.ACTIVE:
        outcome = "kept_inactive"
    else:
        outcome = "unchanged"
    if row.name and found.name != row.name and found.status == SubscriberStatus.ACTIVE:
        changes["name"] = row.name
        outcome = "updated" if outcome == "unchanged" else outcome
    return outcome, changes


IMPORT_BATCH = 2000
"""Rows an import merges in one transaction, querying only their own addresses: memory stays
flat whatever the list's length, and no transaction holds the database for long."""


def import_subscribers(
    engine: Engine,
    rows: Iterable[Subscriber],
    source: str,
    now: datetime,
    via: JoinMethod = JoinMethod.IMPORT,
    *,
    batch_size: int = IMPORT_BATCH,
) -> ImportReport:
    """Add new addresses with their row's status (active by default); update names; mark an
    active subscriber gone when their row says so; never re-activate anybody who left, never
    confirm a signup, never add anybody erased from the list.

    `rows` (distinct addresses) are read and merged `batch_size` at a time, each batch in its
    own transaction: an import stopped midway (a crash, a kill) leaves the batches before it
    imported, and importing the same rows again brings the list to the same state, since
    nothing an import does is undone or done twice by a second one.
    """
    report = ImportReport()
    pending = iter(rows)
    while batch := list(islice(pending, batch_size)):  # read before the transaction begins
        with engine.begin() as conn:
            _import_batch(conn, batch, report, source=source, via=via, now=now)
    return report


def _import_batch(
    conn: Connection,
    batch: Sequence[Subscriber],
    report: ImportReport,
    *,
    source: str,
    via: JoinMethod,
    now: datetime,
) -> None:
    """Merge one batch of rows against the subscribers (and erased addresses) it names."""
    keys = {address_key(subscriber.email) for subscriber in batch}
    existing = {
        row.email_key: row
        for row in conn.execute(
            sa.select(
                subscribers.c.id, subscribers.c.email_key, subscribers.c.name, subscribers.c.status
            ).where(subscribers.c.email_key.in_(list(keys)))
        )
    }
    erased = _erased(conn, keys - existing.keys())
    new_rows: dict[str, dict[str, object]] = {}
    for subscriber in batch:
        key = address_key(subscriber.email)
        found = existing.get(key)
        if found is None:
            if key in erased:
                report.suppressed += 1
            elif key not in new_rows:
                new_rows[key] = _new_row(subscriber, key, source, via, now)
                report.added += 1
            continue
        outcome, changes = _merge(found, subscriber)
        setattr(report, outcome, getattr(report, outcome) + 1)
        if changes:
            conn.execute(
                subscribers.update()
                .where(subscribers.c.id == found.id)
                .values(**changes, updated_at=now)
            )
        if "status" in changes:
            note_event(conn, found.id, subscriber.status, f"import of {source}", now)
    if new_rows:  # an address another process imported meanwhile is skipped
        conn.execute(insert_or_skip(conn, subscribers, ["email_key"]), list(new_rows.values()))


def _erased(conn: Connection, keys: Collection[str]) -> set[str]:
    """Which of these address keys are on the suppression list (erased people)."""
    if not keys:
        return set()
    by_hash = {address_hash(key): key for key in keys}
    found = conn.execute(
        sa.select(suppressions.c.address_sha256).where(
            suppressions.c.address_sha256.in_(list(by_hash))
        )
    )
    return {by_hash[row.address_sha256] for row in found}


def note_event(
    conn: Connection, subscriber_id: int, status: SubscriberStatus, by: str, now: datetime
) -> None:
    conn.execute(
        subscriber_events.insert().values(
            subscriber_id=subscriber_id, at=now, status=status, changed_by=by[:200]
        )
    )


def retire_subscriber(
    conn: Connection, subscriber_id: int, status: SubscriberStatus, by: str, now: datetime
) -> bool:
    """Mark an active subscriber `status` (bounced, complained, unsubscribed) inside the
    caller's transaction, recording who did it; False if they were not active."""
    changed = conn.execute(
        subscribers.update()
        .where(subscribers.c.id == subscriber_id, subscribers.c.status == SubscriberStatus.ACTIVE)
        .values(status=status, updated_at=now)
    ).rowcount
    if changed:
        note_event(conn, subscriber_id, status, by, now)
    return bool(changed)


def set_subscriber_status(
    engine: Engine, email: str, status: SubscriberStatus, now: datetime, by: str = ""
) -> SubscriberStatus | None:
    """Change one subscriber's status, recording who did it; their status before (None: the
    address is unknown)."""
    with engine.begin() as conn:
        found = conn.execute(
            sa.select(subscribers.c.id, subscribers.c.status).where(
                subscribers.c.email_key == address_key(email)
            )
        ).first()
        if found is None:
            return None
        conn.execute(
            subscribers.update()
            .where(subscribers.c.id == found.id)
            .values(status=status, updated_at=now)
        )
        if by and found.status != status:
            note_event(conn, found.id, status, by, now)
    return SubscriberStatus(found.status)


@dataclass(frozen=True, slots=True)
class SubscriberRecord:
    """One subscriber as the database has them, with their deliberate status changes."""

    email: str
    name: str
    status: SubscriberStatus
    source: str
    joined: datetime
    joined_via: JoinMethod
    confirmed: datetime | None
    events: tuple[tuple[datetime, SubscriberStatus, str], ...]
    """(when, the status set, by whom), oldest first."""


def subscriber_history(engine: Engine, email: str) -> SubscriberRecord | None:
    """One subscriber's record and status changes; None if the address is unknown."""
    with reader(engine) as conn:
        row = conn.execute(
            sa.select(subscribers).where(subscribers.c.email_key == address_key(email))
        ).first()
        if row is None:
            return None
        events = conn.execute(
            sa.select(
                subscriber_events.c.at, subscriber_events.c.status, subscriber_events.c.changed_by
            )
            .where(subscriber_events.c.subscriber_id == row.id)
            .order_by(subscriber_events.c.id)
        ).all()
    return SubscriberRecord(
        row.email,
        row.name,
        SubscriberStatus(row.status),
        row.source,
        row.created_at,
        JoinMethod(row.joined_via),
        row.confirmed_at,
        tuple((event.at, SubscriberStatus(event.status), event.changed_by) for event in events),
    )


def list_subscribers(
    engine: Engine, status: SubscriberStatus | None = None
) -> Iterator[tuple[str, str, SubscriberStatus]]:
    """(email, name, status) rows, in the order they were added, streamed."""
    query = sa.select(subscribers.c.email, subscribers.c.name, subscribers.c.status).order_by(
        subscribers.c.id
    )
    if status is not None:
        query = query.where(subscribers.c.status == status)
    with reader(engine) as conn:
        for row in conn.execution_options(yield_per=1000).execute(query):
            yield (row.email, row.name, SubscriberStatus(row.status))


def consent_rows(engine: Engine) -> Iterator[tuple[str, ...]]:
    """Every subscriber with their consent record, as `subscribers export` writes them:
    email, name, status, joined_at, joined_via, source, confirmed_at (ISO 8601 UTC; '' if not)."""
    columns = (subscribers.c.email, subscribers.c.name, subscribers.c.status)
    consent = (
        subscribers.c.created_at,
        subscribers.c.joined_via,
        subscribers.c.source,
        subscribers.c.confirmed_at,
    )
    query = sa.select(*columns, *consent).order_by(subscribers.c.id)
    with reader(engine) as conn:
        for row in conn.execution_options(yield_per=1000).execute(query):
            yield (
                row.email,
                row.name,
                row.status,
                _iso(row.created_at),
                row.joined_via,
                row.source,
                _iso(row.confirmed_at),
            )


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def status_counts(engine: Engine) -> dict[SubscriberStatus, int]:
    """How many subscribers are in each status."""
    with reader(engine) as conn:
        rows = conn.execute(
            sa.select(subscribers.c.status, sa.func.count()).group_by(subscribers.c.status)
        )
        return {SubscriberStatus(status): int(count) for status, count in rows}
