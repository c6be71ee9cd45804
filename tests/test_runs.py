"""Dead senders, told apart without trusting a bare pid, and survivors that take over their claims."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from newsletter.app.audience import sync_subscribers
from newsletter.app.send import StoreLedger, send_issue
from newsletter.app.wiring import database
from newsletter.config import Secrets, load_config
from newsletter.db import ledger, runs
from newsletter.db.schema import ledger as ledger_table
from newsletter.db.schema import runs as runs_table
from newsletter.mail.compose import message_id
from newsletter.models import LedgerStatus, Outcome
from tests.conftest import both_databases

from .conftest import now_utc, serving
from .smtpfaults import ScriptedHandler

SECRETS = Secrets(unsubscribe_key=b"k" * 32)


def _issue(config, built):
    """The issue's ledger filled, as a send does before it claims."""
    engine = database(config)
    now = now_utc()
    sync_subscribers(config, now)
    issue_id = ledger.record_issue(
        engine, built.stats.as_of, built.rendered.subject, built.content_sha256, now
    )
    as_of = built.stats.as_of.isoformat()
    ledger.enqueue_audience(
        engine, issue_id, lambda email: message_id(config.newsletter.list_id, as_of, email), now
    )
    return engine, issue_id


def _peer(engine, issue_id, pid: int, started_at: datetime, claims: int) -> int:
    """A run of another process on this host holding `claims` claims."""
    with engine.begin() as conn:
        run_id = conn.execute(
            runs_table.insert().values(
                issue_id=issue_id,
                host=socket.gethostname(),
                pid=pid,
                started_at=started_at,
                heartbeat_at=started_at,
            )
        ).inserted_primary_key[0]
    ledger.claim(engine, issue_id, run_id, claims, now_utc())
    return run_id


def _claimed_by(engine, run_id) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(
                ledger_table.c.claimed_by == run_id,
                ledger_table.c.status == LedgerStatus.CLAIMED,
            )
        ).scalar_one()


@both_databases
def test_a_reused_pid_is_not_the_run_that_held_it(write_config, build_day, database_url):
    """PID 1 in every new container, or a pid the kernel gave again: the process now behind
    the pid started after the run did, so the run is dead and its claims go back."""
    config = load_config(write_config(subscribers={"file": None}, database={"url": database_url}))
    from newsletter.app.audience import add_subscriber  # noqa: PLC0415

    for i in range(4):
        add_subscriber(config, f"r{i}@example.com", "", now_utc())
    engine, issue_id = _issue(config, build_day("2024-07-16"))
    alive_pid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.2)
        before = now_utc() - timedelta(hours=1)  # the run began before this process did
        reused = _peer(engine, issue_id, alive_pid.pid, before, 2)
        genuine = _peer(engine, issue_id, alive_pid.pid, now_utc() + timedelta(seconds=1), 2)
        mine = runs.start_run(engine, runs.issue_queue(issue_id), now_utc())
        assert _claimed_by(engine, reused) == 0  # taken for dead: its claims are pending again
        assert _claimed_by(engine, genuine) == 2  # the same pid, the same process: still alive
        runs.finish_run(engine, mine, now_utc())
    finally:
        alive_pid.kill()
        alive_pid.wait()


@both_databases
def test_a_survivor_takes_over_the_claims_of_a_sender_that_died(
    write_config, build_day, database_url
):
    handler = ScriptedHandler()
    with serving(handler) as port:
        config = load_config(
            write_config(smtp={"host": "127.0.0.1", "port": port}, database={"url": database_url})
        )
        built = build_day("2024-07-16")
        engine, issue_id = _issue(config, built)
        peer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2)"])
        time.sleep(0.2)
        _peer(engine, issue_id, peer.pid, datetime.now(UTC), 2)  # alive when the survivor starts
        started = time.monotonic()
        result = send_issue(config, built, secrets=SECRETS, clock=now_utc)
        peer.wait()
    assert time.monotonic() - started < 30
    assert result.ledger == {"sent": 5}
    assert result.complete
    assert sorted(env.rcpt_tos[0] for env in handler.stored) == sorted(
        set(env.rcpt_tos[0] for env in handler.stored)
    )
    assert len(handler.stored) == 5


@both_databases
def test_take_over_counts_what_a_peer_just_released_as_claimable(
    write_config, build_day, database_url
):
    """A sender that finds nothing to claim, while a peer releases a dead run's claims, must
    see them: it stops only when nothing is claimable and no live peer holds anything."""
    config = load_config(write_config(database={"url": database_url}))
    engine, issue_id = _issue(config, build_day("2024-07-16"))
    queue = runs.issue_queue(issue_id)
    me = runs.start_run(engine, queue, now_utc())
    assert runs.take_over(engine, queue, me, now_utc()) == (5, 0)  # released by nobody
    ledger.claim(engine, issue_id, me, 5, now_utc())
    assert runs.take_over(engine, queue, me, now_utc()) == (0, 0)  # all mine now


def test_a_send_that_stops_waiting_on_a_live_peer_says_nothing_is_lost(
    fast_cli, write_config, build_day, smtp_server, capsys, monkeypatch
):
    from newsletter.cli import main  # noqa: PLC0415

    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "runs-test-secret")
    path = write_config(
        smtp={"host": smtp_server.host, "port": smtp_server.port}, delivery={"max_wait_s": 0}
    )
    config = load_config(path)
    engine, issue_id = _issue(config, build_day("2024-07-16"))
    peer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.2)
        _peer(engine, issue_id, peer.pid, datetime.now(UTC), 2)
        code = main(["send", "--config", str(path), "--as-of", "2024-07-16", "--quiet"])
    finally:
        peer.kill()
        peer.wait()
    captured = capsys.readouterr()
    assert code == 1
    assert "Ledger:  2 claimed, 3 sent" in captured.out
    assert "Another sender is still working: it holds 2 message(s) of this issue" in captured.err
    assert "Nothing is lost" in captured.err


def _break_the_link(engine, store) -> object:
    """Make the next write on the sender's kept connection fail as a real fault would: on
    PostgreSQL the server ends its session; on SQLite another process holds the write lock
    past the connection's busy timeout. Returns what holds the lock (None on PostgreSQL)."""
    driver = store._writer.connection.driver_connection
    if engine.dialect.name == "postgresql":
        with engine.connect() as other:
            other.execute(
                sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": driver.info.backend_pid}
            )
        return None
    driver.execute("PRAGMA busy_timeout=50")
    holder = sqlite3.connect(engine.url.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


@both_databases
def test_the_senders_kept_connection_is_dropped_by_a_failed_write_and_given_back(
    write_config, build_day, database_url
):
    """Claims and results share one connection for the run. A write that fails on it (the
    server ended the session, a lock held too long) fails alone: the connection is dropped,
    whatever state it was left in, and the next write takes a new one. After `close` nothing
    stays checked out of the pool, and a late result is still written, through the pool."""
    config = load_config(write_config(database={"url": database_url}))
    engine, issue_id = _issue(config, build_day("2024-07-16"))
    run_id = runs.start_run(engine, runs.issue_queue(issue_id), now_utc())
    store = StoreLedger(engine, issue_id, run_id, now_utc)
    first = store.claim(2)
    holder = _break_the_link(engine, store)
    sent = [Outcome(first[0].subscriber_id, LedgerStatus.SENT, "250 ok")]
    with pytest.raises(sa.exc.OperationalError):
        store.record(sent)
    if holder is not None:
        holder.close()
    store.record(sent)
    rest = store.claim(10)
    store.close()
    assert engine.pool.checkedout() == 0
    store.record([Outcome(first[1].subscriber_id, LedgerStatus.SENT, "250 ok")])
    assert engine.pool.checkedout() == 0
    assert sorted(d.subscriber_id for d in rest) == sorted(
        set(range(1, 6)) - {d.subscriber_id for d in first}
    )
    counts = ledger.ledger_counts(engine, issue_id)
    runs.finish_run(engine, run_id, now_utc())
    assert counts == {LedgerStatus.SENT: 2, LedgerStatus.CLAIMED: 3}
