"""The database (SQLAlchemy Core): subscribers, issues, send runs and the send ledger.

SQLite under var/ by default; a PostgreSQL URL works unchanged (only portable SQL is used, and
claims lock rows with FOR UPDATE SKIP LOCKED where the database has it). On SQLite every write
transaction starts with BEGIN IMMEDIATE, so two senders never interleave a claim, and the
journal is WAL with synchronous=NORMAL: a committed row survives a killed process.

The ledger holds one row per (issue, subscriber): pending -> claimed -> sent | deferred |
bounced | failed | skipped. A claim is committed before the message goes out and the result
right after the server answers, so a killed run leaves at most its in-flight messages claimed;
the next run reclaims them from the dead run and sends them again with the same Message-ID.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from newsletter.errors import NewsletterError, SubscriberError
from newsletter.models import (
    CLAIMED,
    DEFERRED,
    PENDING,
    SENT,
    SKIPPED,
    Delivery,
    EstimateSnapshot,
    Outcome,
    Subscriber,
    address_key,
)

ACTIVE, UNSUBSCRIBED, BOUNCED, COMPLAINED = "active", "unsubscribed", "bounced", "complained"
SUBSCRIBER_STATUSES = (ACTIVE, UNSUBSCRIBED, BOUNCED, COMPLAINED)
READ_ONLY = "newsletter_read_only"
RUN_LEASE = timedelta(minutes=5)
"""A run on another host whose heartbeat is older than this is taken for dead."""

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
)

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
    sa.Column("issue_id", sa.ForeignKey("issues.id"), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
)

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
    sa.Index("ix_send_ledger_issue_status", "issue_id", "status"),
)

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


class DatabaseError(NewsletterError):
    """The database cannot be opened or used."""


def _new_id(result: sa.CursorResult[Any]) -> int:
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
    """Writers take the write lock up front; readers (see `_reader`) start a plain snapshot."""
    if connection.get_execution_options().get(READ_ONLY):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _reader(engine: Engine) -> Connection:
    """A connection for reading only: on SQLite it never blocks writers or waits for them."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def _check_columns(engine: Engine) -> None:
    """Refuse a database whose tables lack columns this version writes (no migrations yet)."""
    inspector = sa.inspect(engine)
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        missing = [column.name for column in table.columns if column.name not in present]
        if missing:
            raise DatabaseError(
                f"database table {table.name} lacks column(s) {', '.join(missing)}: it was made by "
                "an older version and there are no migrations yet. Keep the file (it records who "
                "unsubscribed and what was sent) and use the version that made it; to start "
                "afresh, `newsletter subscribers export` first, move the file aside, import the "
                "export, and remove the addresses that had left (an import makes everyone active)"
            )


def open_database(url: str) -> Engine:
    """An engine for `url` with the tables created; SQLite files get their folder made."""
    try:
        engine = sa.create_engine(url)
        if engine.dialect.name == "sqlite":
            database = engine.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        metadata.create_all(engine)
        _check_columns(engine)
    except (sa.exc.SQLAlchemyError, OSError) as err:
        raise DatabaseError(
            f"cannot open database {sa.engine.make_url(url).render_as_string()}: {err}"
        ) from err
    return engine


# Subscribers -------------------------------------------------------------------------------


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
                        "status": ACTIVE,
                        "source": source,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                report.added += 1
            elif found is not None and found.status != ACTIVE:
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


def set_subscriber_status(engine: Engine, email: str, status: str, now: datetime) -> bool:
    """Change one subscriber's status; False if the address is unknown."""
    if status not in SUBSCRIBER_STATUSES:
        raise SubscriberError(
            f"unknown subscriber status '{status}' (one of {', '.join(SUBSCRIBER_STATUSES)})"
        )
    with engine.begin() as conn:
        result = conn.execute(
            subscribers.update()
            .where(subscribers.c.email_key == address_key(email))
            .values(status=status, updated_at=now)
        )
    return bool(result.rowcount)


def list_subscribers(engine: Engine, status: str | None = None) -> Iterator[tuple[str, str, str]]:
    """(email, name, status) rows, in the order they were added, streamed."""
    query = sa.select(subscribers.c.email, subscribers.c.name, subscribers.c.status).order_by(
        subscribers.c.id
    )
    if status is not None:
        query = query.where(subscribers.c.status == status)
    with _reader(engine) as conn:
        for row in conn.execution_options(yield_per=1000).execute(query):
            yield (row.email, row.name, row.status)


# Issues and runs ---------------------------------------------------------------------------


def record_issue(
    engine: Engine, as_of: date, subject: str, content_sha256: str, now: datetime
) -> int:
    """The issue's id; the first send freezes its content, and a changed build is refused."""
    with engine.begin() as conn:
        row = conn.execute(sa.select(issues).where(issues.c.as_of == as_of)).first()
        if row is None:
            return _new_id(
                conn.execute(
                    issues.insert().values(
                        as_of=as_of, subject=subject, content_sha256=content_sha256, created_at=now
                    )
                )
            )
        sent = conn.execute(
            sa.select(sa.func.count()).where(ledger.c.issue_id == row.id, ledger.c.status == SENT)
        ).scalar_one()
        if row.content_sha256 != content_sha256 and sent:
            raise NewsletterError(
                f"issue {as_of.isoformat()} changed since {sent} subscriber(s) received it; sending the "
                "rest a different email is refused (restore the built issue, or send it as a new issue)"
            )
        if row.content_sha256 != content_sha256:
            conn.execute(
                issues.update()
                .where(issues.c.id == row.id)
                .values(subject=subject, content_sha256=content_sha256)
            )
        return int(row.id)


def latest_unfinished_issue(engine: Engine) -> date | None:
    """The as-of of the newest issue with messages not yet sent, for `send --resume`."""
    with _reader(engine) as conn:
        row = conn.execute(
            sa.select(issues.c.as_of)
            .join(ledger, ledger.c.issue_id == issues.c.id)
            .where(ledger.c.status.in_([PENDING, CLAIMED, DEFERRED]))
            .order_by(issues.c.as_of.desc())
            .limit(1)
        ).first()
    return None if row is None else row.as_of


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_run(engine: Engine, issue_id: int, now: datetime) -> int:
    """Register this process as a sender, release the claims of senders that died, and give
    messages an earlier run deferred a fresh set of attempts."""
    host = socket.gethostname()
    with engine.begin() as conn:
        open_runs = conn.execute(sa.select(runs).where(runs.c.finished_at.is_(None))).all()
        dead = [
            run.id
            for run in open_runs
            if (run.host == host and not _pid_alive(run.pid))
            or _naive(run.heartbeat_at) < _naive(now - RUN_LEASE)
        ]
        if dead:
            conn.execute(runs.update().where(runs.c.id.in_(dead)).values(finished_at=now))
            conn.execute(
                ledger.update()
                .where(ledger.c.claimed_by.in_(dead), ledger.c.status == CLAIMED)
                .values(status=PENDING, claimed_by=None, updated_at=now)
            )
        conn.execute(
            ledger.update()
            .where(ledger.c.issue_id == issue_id, ledger.c.status == DEFERRED)
            .values(status=PENDING, attempts=0, next_attempt_at=None, updated_at=now)
        )
        return _new_id(
            conn.execute(
                runs.insert().values(
                    issue_id=issue_id, host=host, pid=os.getpid(), started_at=now, heartbeat_at=now
                )
            )
        )


def _naive(moment: datetime) -> datetime:
    """SQLite returns stored datetimes without their zone; compare everything as naive UTC."""
    return moment.replace(tzinfo=None)


def heartbeat(engine: Engine, run_id: int, now: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(runs.update().where(runs.c.id == run_id).values(heartbeat_at=now))


def finish_run(engine: Engine, run_id: int, now: datetime) -> None:
    """Mark the run finished and hand back any claim it still holds."""
    with engine.begin() as conn:
        conn.execute(
            ledger.update()
            .where(ledger.c.claimed_by == run_id, ledger.c.status == CLAIMED)
            .values(status=PENDING, claimed_by=None, updated_at=now)
        )
        conn.execute(runs.update().where(runs.c.id == run_id).values(finished_at=now))


# The ledger --------------------------------------------------------------------------------


def enqueue_audience(
    engine: Engine, issue_id: int, message_id: Any, now: datetime, batch: int = 1000
) -> int:
    """Add a pending ledger row for every active subscriber the issue has no row for yet.

    `message_id(email)` gives each row its fixed Message-ID. Returns how many rows were added.
    """
    known = sa.select(ledger.c.subscriber_id).where(ledger.c.issue_id == issue_id)
    added, last_id = 0, 0
    while True:
        with engine.begin() as conn:
            chunk = conn.execute(
                sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.name)
                .where(
                    subscribers.c.id > last_id,
                    subscribers.c.status == ACTIVE,
                    subscribers.c.id.not_in(known),
                )
                .order_by(subscribers.c.id)
                .limit(batch)
            ).all()
            if not chunk:
                return added
            conn.execute(
                ledger.insert(),
                [
                    {
                        "issue_id": issue_id,
                        "subscriber_id": row.id,
                        "email": row.email,
                        "name": row.name,
                        "message_id": message_id(row.email),
                        "status": PENDING,
                        "attempts": 0,
                        "updated_at": now,
                    }
                    for row in chunk
                ],
            )
        added += len(chunk)
        last_id = chunk[-1].id


def claim(engine: Engine, issue_id: int, run_id: int, limit: int, now: datetime) -> list[Delivery]:
    """Claim up to `limit` due messages for `run_id`; rows of people who left are skipped."""
    with engine.begin() as conn:
        due = (
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
                ledger.c.issue_id == issue_id,
                ledger.c.status == PENDING,
                sa.or_(ledger.c.next_attempt_at.is_(None), ledger.c.next_attempt_at <= now),
            )
            .order_by(ledger.c.subscriber_id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=ledger)
        )
        rows = conn.execute(due).all()
        gone = [row.subscriber_id for row in rows if row.subscriber_status != ACTIVE]
        if gone:
            conn.execute(
                ledger.update()
                .where(ledger.c.issue_id == issue_id, ledger.c.subscriber_id.in_(gone))
                .values(status=SKIPPED, last_reply="subscriber no longer active", updated_at=now)
            )
        wanted = [row for row in rows if row.subscriber_status == ACTIVE]
        if wanted:
            conn.execute(
                ledger.update()
                .where(
                    ledger.c.issue_id == issue_id,
                    ledger.c.subscriber_id.in_([row.subscriber_id for row in wanted]),
                    ledger.c.status == PENDING,
                )
                .values(
                    status=CLAIMED,
                    claimed_by=run_id,
                    attempts=ledger.c.attempts + 1,
                    updated_at=now,
                )
            )
    return [
        Delivery(row.subscriber_id, row.email, row.name, row.message_id, row.attempts + 1)
        for row in wanted
    ]


def next_due(engine: Engine, issue_id: int) -> datetime | None:
    """When the earliest pending retry of this issue falls due (None: nothing is waiting)."""
    with _reader(engine) as conn:
        return conn.execute(
            sa.select(sa.func.min(ledger.c.next_attempt_at)).where(
                ledger.c.issue_id == issue_id, ledger.c.status == PENDING
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


def record(engine: Engine, issue_id: int, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Write the results of sent or refused messages (one transaction for all of them)."""
    rows = [
        {
            "issue": issue_id,
            "subscriber": outcome.subscriber_id,
            "status": outcome.status,
            "reply": outcome.reply[:1000],
            "retry_at": outcome.retry_at,
            "now": now,
            "sent_at": now if outcome.status == SENT else None,
        }
        for outcome in outcomes
    ]
    bounced = [outcome.subscriber_id for outcome in outcomes if outcome.bounce_subscriber]
    with engine.begin() as conn:
        conn.execute(_RECORD, rows)
        if bounced:
            conn.execute(
                subscribers.update()
                .where(subscribers.c.id.in_(bounced))
                .values(status=BOUNCED, updated_at=now)
            )


def ledger_counts(engine: Engine, issue_id: int) -> dict[str, int]:
    """How many of the issue's messages are in each status."""
    with _reader(engine) as conn:
        rows = conn.execute(
            sa.select(ledger.c.status, sa.func.count())
            .where(ledger.c.issue_id == issue_id)
            .group_by(ledger.c.status)
        )
        return {status: int(count) for status, count in rows}


# Reviews -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Review:
    """The editor's review of one issue; each digest identifies the content it applies to."""

    approved_sha256: str | None = None
    test_sent_sha256: str | None = None


def _set_review(engine: Engine, as_of: date, **values: object) -> None:
    with engine.begin() as conn:
        found = conn.execute(sa.select(reviews.c.as_of).where(reviews.c.as_of == as_of)).first()
        if found is None:
            conn.execute(reviews.insert().values(as_of=as_of, **values))
        else:
            conn.execute(reviews.update().where(reviews.c.as_of == as_of).values(**values))


def approve(engine: Engine, as_of: date, content_sha256: str, now: datetime) -> None:
    """Mark this content of the issue approved (a later approval replaces an earlier one)."""
    _set_review(engine, as_of, approved_sha256=content_sha256, approved_at=now)


def note_test_sent(engine: Engine, as_of: date, content_sha256: str, now: datetime) -> None:
    """Remember that this content went to the editor for review."""
    _set_review(engine, as_of, test_sent_sha256=content_sha256, test_sent_at=now)


def review(engine: Engine, as_of: date) -> Review:
    with _reader(engine) as conn:
        row = conn.execute(sa.select(reviews).where(reviews.c.as_of == as_of)).first()
    if row is None:
        return Review()
    return Review(row.approved_sha256, row.test_sent_sha256)


# Fundamentals ------------------------------------------------------------------------------


def save_estimates(engine: Engine, snapshots: Sequence[EstimateSnapshot]) -> int:
    """Store dated estimate snapshots; a second snapshot on the same day replaces the first."""
    with engine.begin() as conn:
        for snap in snapshots:
            conn.execute(
                estimate_snapshots.delete().where(
                    estimate_snapshots.c.ticker == snap.ticker,
                    estimate_snapshots.c.taken_on == snap.taken_on,
                    estimate_snapshots.c.period == snap.period,
                )
            )
        if snapshots:
            conn.execute(
                estimate_snapshots.insert(),
                [
                    {
                        "ticker": s.ticker,
                        "taken_on": s.taken_on,
                        "period": s.period,
                        "revenue_avg": s.revenue_avg,
                        "analysts": s.analysts,
                        "next_earnings": s.next_earnings,
                        "shares_outstanding": s.shares,
                    }
                    for s in snapshots
                ],
            )
    return len(snapshots)


def load_estimates(engine: Engine, tickers: Sequence[str], until: date) -> list[EstimateSnapshot]:
    """Every snapshot of `tickers` taken on or before `until` (no look-ahead), oldest first."""
    with _reader(engine) as conn:
        rows = conn.execute(
            sa.select(estimate_snapshots)
            .where(
                estimate_snapshots.c.ticker.in_(list(tickers)),
                estimate_snapshots.c.taken_on <= until,
            )
            .order_by(estimate_snapshots.c.taken_on)
        ).all()
    return [
        EstimateSnapshot(
            row.ticker,
            row.taken_on,
            row.period,
            row.revenue_avg,
            row.analysts,
            row.next_earnings,
            row.shares_outstanding,
        )
        for row in rows
    ]
