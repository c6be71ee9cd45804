"""The import streamed in batches: the same counts and the same list whatever the batch size,
an import stopped midway that converges when run again, repeats and bad rows found across the
whole file, and a broken file that imports nothing; on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from newsletter.app import signup
from newsletter.app.audience import add_subscriber, import_csv, remove_subscriber
from newsletter.app.wiring import database
from newsletter.cli import main
from newsletter.config import load_config
from newsletter.db.audience import ImportReport, import_subscribers
from newsletter.db.schema import subscriber_events, subscribers
from newsletter.errors import SubscriberError
from newsletter.models import Subscriber, SubscriberStatus
from tests.conftest import both_databases, now_utc

ACTIVE, LEFT, BOUNCED = (
    SubscriberStatus.ACTIVE,
    SubscriberStatus.UNSUBSCRIBED,
    SubscriberStatus.BOUNCED,
)

ROWS = [
    Subscriber("new1@example.com", "New One"),
    Subscriber("ada@example.com", "Ada Lovelace"),  # renamed
    Subscriber("bob@example.com", "Bob"),  # left earlier: stays so
    Subscriber("carol@example.com", "Carol", BOUNCED),  # active, her row says bounced
    Subscriber("erin@example.com", "Erin"),  # erased: never added again
    Subscriber("dan@example.com", "Dan"),  # unchanged
    Subscriber("new2@example.com", "", LEFT),  # new, and gone already
]
EXPECTED = ImportReport(
    added=2, updated=1, unchanged=1, kept_inactive=1, marked_inactive=1, suppressed=1
)
EXPECTED_LIST = [
    ("ada@example.com", "Ada Lovelace", ACTIVE),
    ("bob@example.com", "Bob", LEFT),
    ("carol@example.com", "Carol", BOUNCED),
    ("dan@example.com", "Dan", ACTIVE),
    ("new1@example.com", "New One", ACTIVE),
    ("new2@example.com", "", LEFT),
]


@pytest.fixture
def config_path(write_config, database_url):
    return write_config(subscribers={"file": None}, database={"url": database_url})


@pytest.fixture
def config(config_path):
    return load_config(config_path)


def _the_list_before(config):
    now = now_utc()
    for email, name in [("ada", "Ada"), ("bob", "Bob"), ("carol", "Carol"), ("dan", "Dan")]:
        add_subscriber(config, f"{email}@example.com", name, now)
    remove_subscriber(config, "bob@example.com", now, by="a test")
    add_subscriber(config, "erin@example.com", "Erin", now)
    signup.forget_subscriber(config, "erin@example.com", now)


def _the_list(config):
    with database(config).connect() as conn:
        rows = conn.execute(
            sa.select(subscribers.c.email, subscribers.c.name, subscribers.c.status).order_by(
                subscribers.c.email
            )
        )
        return [(row.email, row.name, SubscriberStatus(row.status)) for row in rows]


def _events(config):
    with database(config).connect() as conn:
        return conn.execute(
            sa.select(subscribers.c.email, subscriber_events.c.status)
            .join(subscribers, subscribers.c.id == subscriber_events.c.subscriber_id)
            .order_by(subscriber_events.c.id)
        ).all()


@both_databases
@pytest.mark.parametrize("batch_size", [1, 2, 3, 1000])
def test_the_counts_and_the_list_do_not_depend_on_the_batches(config, batch_size):
    _the_list_before(config)
    report = import_subscribers(
        database(config), ROWS, "list.csv", now_utc(), batch_size=batch_size
    )
    assert report == EXPECTED
    assert _the_list(config) == EXPECTED_LIST
    assert _events(config)[-1] == ("carol@example.com", BOUNCED)


class Crashed(Exception):
    """The process died here."""


def _stopping_after(rows, count):
    """The rows up to `count`, then the failure a crash would be."""
    yield from rows[:count]
    raise Crashed


@both_databases
def test_an_import_stopped_midway_converges_when_run_again(config):
    _the_list_before(config)
    with pytest.raises(Crashed):
        import_subscribers(
            database(config), _stopping_after(ROWS, 7), "list.csv", now_utc(), batch_size=2
        )
    # three batches are in (new1 added, ada renamed, bob kept, carol marked bounced, erin
    # suppressed, dan unchanged); the fourth had read new2 and was not committed
    assert ("new1@example.com", "New One", ACTIVE) in _the_list(config)
    assert ("carol@example.com", "Carol", BOUNCED) in _the_list(config)
    assert "new2@example.com" not in [email for email, _name, _status in _the_list(config)]
    again = import_subscribers(database(config), ROWS, "list.csv", now_utc(), batch_size=2)
    assert again == ImportReport(added=1, unchanged=4, kept_inactive=1, suppressed=1)
    assert _the_list(config) == EXPECTED_LIST
    assert [event for event in _events(config) if event.email == "carol@example.com"] == [
        ("carol@example.com", BOUNCED)
    ]


@both_databases
def test_repeats_and_bad_rows_are_found_across_the_whole_file(
    config, config_path, tmp_path, capsys
):
    listing = tmp_path / "big.csv"
    count = 2_500  # more than one batch of the import
    lines = ["email,name", *(f"reader{i}@example.com,Reader {i}" for i in range(count))]
    lines += ["READER0@example.com,Again", "not-an-address,Bad", "reader2499@example.com,Again"]
    listing.write_text("\n".join(lines) + "\n")
    assert main(["subscribers", "import", str(listing), "--config", str(config_path)]) == 1
    captured = capsys.readouterr()
    [error] = captured.err.splitlines()
    assert error.startswith(f"{listing}: line {count + 3}: 'not-an-address' is not a valid")
    assert captured.out == (
        f"{listing}: {count} added, 0 renamed, 0 unchanged, 0 marked as left (their row says "
        "so), 0 left earlier and stay so, 2 duplicate rows, 1 bad rows\n"
    )
    names = {name for _email, name, _status in _the_list(config)}
    assert len(names) == count and "Again" not in names


@both_databases
def test_a_file_broken_after_its_first_batch_imports_nothing(config, tmp_path):
    listing = tmp_path / "latin1.csv"
    rows = [f"reader{i}@example.com,Reader {i}" for i in range(2_500)]
    listing.write_bytes(
        ("email,name\n" + "\n".join(rows) + "\n").encode() + "b@example.com,Bär\n".encode("latin-1")
    )
    with pytest.raises(SubscriberError, match=r"line 2502: not UTF-8 text \(perhaps Latin-1"):
        import_csv(config, listing, now_utc())
    assert _the_list(config) == []
