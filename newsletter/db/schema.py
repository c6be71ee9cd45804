"""The project database's tables (SQLAlchemy Core) and how to open it.

SQLite under var/ by default; a PostgreSQL URL works unchanged (only portable SQL is used, and
claims lock rows with FOR UPDATE SKIP LOCKED where the database has it). The schema is
versioned with Alembic (db/migrate.py, db/migrations/). On SQLite every write
transaction starts with BEGIN IMMEDIATE, so two senders never interleave a claim, and the
journal is WAL with synchronous=NORMAL: a committed row survives a killed process.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from newsletter.db.migrate import ensure_current
from newsletter.errors import DatabaseError

READ_ONLY = "newsletter_read_only"

metadata = sa.MetaData()

subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("email_key", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False, default=""),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("joined_via", sa.String(16), nullable=False, default="import"),
    sa.Column("confirmed_at", sa.DateTime(timezone=True)),
)
"""The list. With created_at (when they joined), joined_via (import, signup or an admin's add)
and source (the file imported or the page signed up on), confirmed_at makes the consent record."""

suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("address_sha256", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
"""People erased from the list (`subscribers forget`): only a hash of the address is kept, so
that no import adds them again; their own confirmed signup lifts it."""

notices = sa.Table(
    "notices",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subscriber_id", sa.ForeignKey("subscribers.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("message_id", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_reply", sa.Text),
    sa.Column("claimed_by", sa.ForeignKey("send_runs.id")),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.Column("used_at", sa.DateTime(timezone=True)),
    sa.Index("ix_notices_status_id", "status", "id"),
    sa.Index(
        "ux_notices_one_unfinished",
        "subscriber_id",
        unique=True,
        sqlite_where=sa.text("status IN ('pending', 'claimed', 'deferred')"),
        postgresql_where=sa.text("status IN ('pending', 'claimed', 'deferred')"),
    ),
)
"""Confirmation and welcome mails, claimed and recorded like an issue's ledger rows (the same
sender sends them); at most one unfinished per subscriber. used_at: when a confirmation's link
was used (each link confirms once)."""

signup_attempts = sa.Table(
    "signup_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("client_sha256", sa.String(64), nullable=False),
    sa.Column("address_sha256", sa.String(64), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_signup_attempts_client", "client_sha256", "at"),
    sa.Index("ix_signup_attempts_address", "address_sha256", "at"),
)
"""Recent signups, keyed by keyed hashes of the client's IP and the address, for the rate
limits; rows older than a day are deleted."""

subscriber_events = sa.Table(
    "subscriber_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subscriber_id", sa.ForeignKey("subscribers.id"), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("changed_by", sa.String(200), nullable=False),
    sa.Index("ix_subscriber_events_subscriber", "subscriber_id"),
)
"""Deliberate status changes of a subscriber: who made them (a person at the CLI, a reader's
unsubscribe link, an import) and when."""

issues = sa.Table(
    "issues",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("as_of", sa.Date, nullable=False, unique=True),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

runs = sa.Table(
    "send_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("issue_id", sa.ForeignKey("issues.id")),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
)
"""Sender processes (db/runs.py); one without an issue sends notices."""

ledger = sa.Table(
    "send_ledger",
    metadata,
    sa.Column("issue_id", sa.ForeignKey("issues.id"), primary_key=True),
    sa.Column("subscriber_id", sa.ForeignKey("subscribers.id"), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("message_id", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_reply", sa.Text),
    sa.Column("claimed_by", sa.ForeignKey("send_runs.id")),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    # A claim walks an issue's pending rows in subscriber order (migration 0003).
    sa.Index("ix_send_ledger_issue_status_subscriber", "issue_id", "status", "subscriber_id"),
)

corrections = sa.Table(
    "issue_corrections",
    metadata,
    sa.Column("issue_id", sa.ForeignKey("issues.id"), primary_key=True),
    sa.Column("made_at", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("replaced_sha256", sa.String(64), nullable=False),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("readers_before", sa.Integer, nullable=False),
)
"""Corrected editions: content that replaced what some readers had already got, sent only to
those who had not (`newsletter send --corrected`)."""

reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("as_of", sa.Date, primary_key=True),
    sa.Column("approved_sha256", sa.String(64)),
    sa.Column("approved_at", sa.DateTime(timezone=True)),
    sa.Column("test_sent_sha256", sa.String(64)),
    sa.Column("test_sent_at", sa.DateTime(timezone=True)),
)
"""The editor's review of each issue: the content approved, and the content last mailed to
the editor for review (so a waiting scheduled run mails each version once)."""

estimate_snapshots = sa.Table(
    "estimate_snapshots",
    metadata,
    sa.Column("ticker", sa.String(16), primary_key=True),
    sa.Column("taken_on", sa.Date, primary_key=True),
    sa.Column("period", sa.String(8), primary_key=True),
    sa.Column("revenue_avg", sa.Float, nullable=False),
    sa.Column("analysts", sa.Integer, nullable=False),
    sa.Column("next_earnings", sa.Date),
    sa.Column("shares_outstanding", sa.Float),
)

mailbox_messages = sa.Table(
    "mailbox_messages",
    metadata,
    sa.Column("mailbox", sa.String(255), primary_key=True),
    sa.Column("message_key", sa.String(255), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True)),
    sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("ix_mailbox_messages_digest", "digest"),
)
"""Every message read from the bounce mailbox, once (by its key there, and its bytes' SHA-256
so a copy elsewhere is known too): what it was (models.InboundKind) and why."""

bounce_events = sa.Table(
    "bounce_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("subscriber_id", sa.ForeignKey("subscribers.id"), nullable=False),
    sa.Column("issue_id", sa.ForeignKey("issues.id")),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("mailbox", sa.String(255), nullable=False),
    sa.Column("message_key", sa.String(255), nullable=False),
    sa.Index("ix_bounce_events_subscriber_kind_at", "subscriber_id", "kind", "at"),
    sa.Index("ix_bounce_events_issue", "issue_id"),
)
"""What the bounce mailbox said about a subscriber: a hard or soft bounce or a complaint about
one issue (its message's VERP token named both), or an unsubscribe by mail (no issue)."""


def _dialect_insert(conn: Connection, table: sa.Table) -> Any:
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise DatabaseError(f"database dialect {name} is not supported: use SQLite or PostgreSQL")


def insert_or_skip(conn: Connection, table: sa.Table, keys: Sequence[str]) -> sa.Insert:
    """An INSERT that skips rows whose `keys` exist already (another process just wrote them),
    instead of failing: INSERT ... ON CONFLICT DO NOTHING."""
    return cast(
        "sa.Insert", _dialect_insert(conn, table).on_conflict_do_nothing(index_elements=keys)
    )


def upsert(
    conn: Connection, table: sa.Table, keys: Sequence[str], values: dict[str, Any]
) -> sa.Insert:
    """INSERT `values`, or where a row with the same `keys` exists update it with them."""
    statement = _dialect_insert(conn, table).values(**values)
    changes = {name: value for name, value in values.items() if name not in keys}
    return cast("sa.Insert", statement.on_conflict_do_update(index_elements=keys, set_=changes))


def new_id(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    if key is None:
        raise DatabaseError("the database did not return the new row's id")
    return int(key[0])


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below take effect
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    """Writers take the write lock up front; readers (see `reader`) start a plain snapshot.

    The driver runs the BEGIN itself: through SQLAlchemy's execution it cost a third of a
    one-row write. Its errors (the lock still held after busy_timeout) are raised as
    SQLAlchemy's, as every other statement's are."""
    statement = "BEGIN" if connection.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE"
    try:
        connection.connection.driver_connection.execute(statement)  # type: ignore[union-attr]
    except sqlite3.Error as err:
        raise sa.exc.DBAPIError.instance(statement, (), err, sqlite3.Error) from err


@contextmanager
def writing(bind: Engine | Connection) -> Iterator[Connection]:
    """One write transaction: on a new connection from an engine, or on a connection its owner
    keeps open for many (a sender's writes skip the pool's checkout and reset that way)."""
    if isinstance(bind, Connection):
        with bind.begin():
            yield bind
    else:
        with bind.begin() as conn:
            yield conn


def reader(engine: Engine) -> Connection:
    """A connection for reading only: on SQLite it never blocks writers or waits for them."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def make_engine(url: str) -> tuple[Engine, str]:
    """An engine for `url` (SQLite files get their folder made), and the URL to name in
    messages, its password masked. Its schema is not checked: `open_database` does that."""
    parsed = sa.engine.make_url(url)
    if parsed.drivername == "postgresql":  # the driver the postgres extra installs: psycopg 3
        parsed = parsed.set(drivername="postgresql+psycopg")
    where = parsed.render_as_string()
    try:
        engine = sa.create_engine(parsed)
        if engine.dialect.name == "sqlite":
            database = engine.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
    except ModuleNotFoundError as err:
        raise DatabaseError(
            f"database {where} needs the Python driver {err.name}, which is not installed: "
            'pip install -e ".[postgres]" (psycopg 3) for PostgreSQL'
        ) from err
    except (sa.exc.SQLAlchemyError, OSError) as err:
        raise DatabaseError(f"cannot open database {where}: {err}") from err
    return engine, where


def open_database(url: str) -> Engine:
    """An engine for `url` whose schema is the code's: a new database is created, an older or
    newer one is refused with one line (`newsletter db upgrade` moves an older one on)."""
    engine, where = make_engine(url)
    try:
        ensure_current(engine, where)
    except (sa.exc.SQLAlchemyError, OSError) as err:
        engine.dispose()
        raise DatabaseError(f"cannot open database {where}: {err}") from err
    except DatabaseError:
        engine.dispose()
        raise
    return engine


def naive(moment: datetime) -> datetime:
    """A stored time as naive UTC, to compare: SQLite returns stored times without their zone
    (they were written in UTC), PostgreSQL in the session's zone, which need not be UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
