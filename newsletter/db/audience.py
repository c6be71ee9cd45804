"""Subscribers in the database: import, status changes and listing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from newsletter.db.schema import reader, subscribers
from newsletter.models import Subscriber, SubscriberStatus, address_key


@dataclass
class ImportReport:
    """What an import did: new addresses, names updated, and rows left as they were."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_inactive: int = 0


def import_subscribers(
    engine: Engine, rows: Sequence[Subscriber], source: str, now: datetime
) -> ImportReport:
    """Add new addresses as active; update names; never re-activate an inactive subscriber."""
    report = ImportReport()
    with engine.begin() as conn:
        existing = {
            row.email_key: row
            for row in conn.execute(
                sa.select(subscribers.c.email_key, subscribers.c.name, subscribers.c.status)
            )
        }
        new_rows = []
        new_keys: set[str] = set()
        for subscriber in rows:
            key = address_key(subscriber.email)
            found = existing.get(key)
            if found is None and key not in new_keys:
                new_keys.add(key)
                new_rows.append(
                    {
                        "email": subscriber.email,
                        "email_key": key,
                        "name": subscriber.name,
                        "status": SubscriberStatus.ACTIVE,
                        "source": source,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                report.added += 1
            elif found is not None and found.status != SubscriberStatus.ACTIVE:
                report.kept_inactive += 1
            elif found is not None and subscriber.name and found.name != subscriber.name:
                conn.execute(
                    subscribers.update()
                    .where(subscribers.c.email_key == key)
                    .values(name=subscriber.name, updated_at=now)
                )
                report.updated += 1
            else:
                report.unchanged += 1
        if new_rows:
            conn.execute(subscribers.insert(), new_rows)
    return report


def set_subscriber_status(
    engine: Engine, email: str, status: SubscriberStatus, now: datetime
) -> bool:
    """Change one subscriber's status; False if the address is unknown."""
    with engine.begin() as conn:
        result = conn.execute(
            subscribers.update()
            .where(subscribers.c.email_key == address_key(email))
            .values(status=status, updated_at=now)
        )
    return bool(result.rowcount)


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
