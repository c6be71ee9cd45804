"""The readers a dry run goes through, streamed from the database with whether each one's
message of the issue is done; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from newsletter.app.wiring import database
from newsletter.config import load_config
from newsletter.db import ledger
from newsletter.db.audience import import_subscribers, set_subscriber_status
from newsletter.db.schema import ledger as ledger_table
from newsletter.db.schema import subscribers
from newsletter.models import LedgerStatus, Subscriber, SubscriberStatus
from tests.conftest import both_databases, now_utc

FIRST, SECOND = date(2024, 7, 12), date(2024, 7, 19)


def _issue(engine, as_of):
    now = now_utc()
    issue_id = ledger.record_issue(engine, as_of, "Subject", f"sha-{as_of}", now)
    ledger.enqueue_audience(engine, issue_id, lambda email: f"<{as_of}.{email}>", now)
    return issue_id


def _set(engine, issue_id, statuses):
    with engine.begin() as conn:
        for email, status in statuses.items():
            subscriber = sa.select(subscribers.c.id).where(subscribers.c.email == email)
            conn.execute(
                ledger_table.update()
                .where(
                    ledger_table.c.issue_id == issue_id,
                    ledger_table.c.subscriber_id == subscriber.scalar_subquery(),
                )
                .values(status=status)
            )


@both_databases
def test_each_active_reader_comes_with_whether_their_message_is_done(write_config, database_url):
    config = load_config(write_config(subscribers={"file": None}, database={"url": database_url}))
    engine = database(config)
    now = now_utc()
    people = [Subscriber(f"{name}@example.com", name.title()) for name in "abcde"]
    import_subscribers(engine, people, "test", now)
    first = _issue(engine, FIRST)
    set_subscriber_status(engine, "e@example.com", SubscriberStatus.UNSUBSCRIBED, now)
    import_subscribers(engine, [Subscriber("f@example.com", "F")], "test", now)
    second = _issue(engine, SECOND)
    _set(
        engine,
        first,
        {
            "a@example.com": LedgerStatus.SENT,
            "c@example.com": LedgerStatus.DEFERRED,
            "d@example.com": LedgerStatus.FAILED,
            "e@example.com": LedgerStatus.SENT,
        },
    )
    _set(engine, second, {"f@example.com": LedgerStatus.SENT})
    assert list(ledger.active_readers(engine, FIRST)) == [
        ("a@example.com", "A", True),
        ("b@example.com", "B", False),  # pending
        ("c@example.com", "C", False),  # deferred: will be tried again
        ("d@example.com", "D", True),  # refused for good
        ("f@example.com", "F", False),  # joined after this issue's send
    ]
    assert [done for _email, _name, done in ledger.active_readers(engine, SECOND)] == [
        False,
        False,
        False,
        False,
        True,
    ]
    assert {done for _email, _name, done in ledger.active_readers(engine, date(2024, 7, 5))} == {
        False
    }
