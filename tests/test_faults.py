"""Faults that are not a reader's: each is judged by its cause, loses nothing, marks nobody,
keeps duplicates within the documented bound, says one line, and ends in bounded time.

Real aiosmtpd servers on 127.0.0.1 (tests/smtpfaults.py) misbehave on purpose; a full disk is
an OSError(ENOSPC) injected where the ledger or the capture server writes.
"""

from __future__ import annotations

import asyncio
import csv
import errno
import os
import pickle
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date

import pytest
import yaml

from newsletter.app import send as send_module
from newsletter.app.audience import subscribers
from newsletter.app.send import send_issue
from newsletter.config import Secrets, load_config
from newsletter.db import ledger as ledger_module
from newsletter.errors import DatabaseError, DeliveryError

from .conftest import REPO, now_utc, serving
from .smtpfaults import DROP_AFTER_STORE, STALL, GreetingServer, ScriptedHandler

SECRETS = Secrets(unsubscribe_key=b"k" * 32)


@pytest.fixture(scope="module")
def built(build_day):
    return build_day("2024-07-16")


@pytest.fixture
def configure(tmp_path):
    """A config for `readers` subscribers against a server on `port`."""

    def make(port: int, readers: int = 5, timeout_s: float = 1, **delivery):
        listing = tmp_path / "readers.csv"
        with listing.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["email", "name"])
            writer.writerows([f"reader{i:03d}@example.com", f"Reader {i}"] for i in range(readers))
        raw = {
            "templates": {"dir": str(REPO / "templates")},
            "paths": {"var_dir": str(tmp_path / "var")},
            "subscribers": {"file": str(listing)},
            "smtp": {"host": "127.0.0.1", "port": port, "timeout_s": timeout_s},
            "delivery": {"connections": 1, "retry_backoff_s": 0, **delivery},
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(raw))
        return load_config(path)

    return make


def statuses(config) -> Counter[str]:
    return Counter(str(status) for _, _, status in subscribers(config))


def stored_per_reader(handler) -> Counter[str]:
    return Counter(envelope.rcpt_tos[0] for envelope in handler.stored)


@pytest.mark.parametrize(
    ("stage", "reply"),
    [
        ("mail", "550 5.1.8 Sender address rejected: Domain not found"),
        ("mail", "553 5.1.7 The sender address is malformed"),
        ("data", "500 5.5.2 Line too long"),
        ("data", "552 5.3.4 Message size exceeds fixed limit"),
        ("data", "554 5.6.0 Content rejected"),
    ],
    ids=["mail-5.1.8", "mail-5.1.7", "data-500", "data-552", "data-5.6.0"],
)
def test_a_refusal_of_the_sender_or_the_message_stops_the_run_and_marks_nobody(
    built, configure, stage, reply
):
    handler = ScriptedHandler(mail=[reply] if stage == "mail" else [], everyone=[])
    if stage == "data":
        handler.everyone = [reply] * 3
    with serving(handler) as port:
        config = configure(port)
        started = time.monotonic()
        with pytest.raises(DeliveryError) as err:
            send_issue(config, built, secrets=SECRETS, clock=now_utc)
        assert time.monotonic() - started < 10
        message = str(err.value)
        assert f"refused the run at {stage}: {reply}; nothing was sent" in message
        assert "\n" not in message
        assert statuses(config) == {"active": 5}  # nobody bounced, nobody failed
        assert handler.stored == []
        handler.everyone.clear()  # the cause is fixed: the same command sends to everyone once
        result = send_issue(config, built, secrets=SECRETS, clock=now_utc)
    assert result.ledger == {"sent": 5}
    assert set(stored_per_reader(handler).values()) == {1}


@pytest.mark.parametrize("connections", [1, 3])
def test_the_same_refusal_for_several_readers_in_a_row_is_not_theirs(built, configure, connections):
    readers = [f"reader{i:03d}@example.com" for i in range(9)]
    handler = ScriptedHandler(rcpt={reader: ["550 Relay denied"] for reader in readers})
    with serving(handler) as port:
        config = configure(port, readers=9, max_same_refusals=4, connections=connections)
        with pytest.raises(DeliveryError, match="4 different recipients in a row were refused"):
            send_issue(config, built, secrets=SECRETS, clock=now_utc)
        handler.rcpt.clear()  # refusals of messages still in flight are undone as well
        result = send_issue(config, built, secrets=SECRETS, clock=now_utc)
    assert result.ledger == {"sent": 9}
    assert statuses(config) == {"active": 9}


def test_bounces_from_one_provider_in_a_row_are_each_readers_own(built, configure):
    dead = {f"reader{i:03d}@example.com": ["550 5.1.1 User unknown"] for i in range(8)}
    handler = ScriptedHandler(rcpt=dead)
    with serving(handler) as port:
        config = configure(port, readers=10, max_same_refusals=4)
        result = send_issue(config, built, secrets=SECRETS, clock=now_utc)
    assert result.ledger == {"bounced": 8, "sent": 2}
    assert statuses(config) == {"bounced": 8, "active": 2}


def test_a_server_that_keeps_losing_the_reply_stops_with_duplicates_bounded(built, configure):
    handler = ScriptedHandler(everyone=[DROP_AFTER_STORE] * 50)
    with serving(handler) as port:
        config = configure(port, max_lost_replies=3)
        with pytest.raises(DeliveryError, match="lost its reply to 3 messages in a row"):
            send_issue(config, built, secrets=SECRETS, clock=now_utc)
        copies = stored_per_reader(handler)
        assert sum(copies.values()) == 3 and max(copies.values()) <= 2  # once more per run
        assert statuses(config) == {"active": 5}
        handler.everyone.clear()
        result = send_issue(config, built, secrets=SECRETS, clock=now_utc)
    assert result.ledger == {"sent": 5}
    assert result.report.uncertain == 0
    assert max(stored_per_reader(handler).values()) <= 3  # two lost in run 1, then the real one


def test_a_421_storm_pauses_the_run_instead_of_cycling_through_the_list(built, configure):
    with GreetingServer("421 4.3.2 too busy, come back later") as server:
        config = configure(server.port, readers=300, max_transient_failures=10)
        started = time.monotonic()
        result = send_issue(config, built, secrets=SECRETS, clock=now_utc)
    assert time.monotonic() - started < 20
    assert server.connections <= 10 + 1
    assert result.report.paused.startswith("paused after 10 transient failures in a row")
    assert result.ledger == {"pending": 300}
    assert result.retry_left and not result.complete
    assert statuses(config) == {"active": 300}


def test_a_data_stall_past_the_timeout_ends_the_run_in_bounded_time(built, configure):
    handler = ScriptedHandler(everyone=[STALL] * 300, stall_s=3)
    with serving(handler) as port:
        config = configure(port, readers=300, timeout_s=0.5, connections=2)
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="lost its reply"):
            send_issue(config, built, secrets=SECRETS, clock=now_utc)
        elapsed = time.monotonic() - started
    assert elapsed < 15
    assert statuses(config) == {"active": 300}


def test_a_full_disk_at_the_ledger_stops_the_run_cleanly(built, configure, monkeypatch):
    handler = ScriptedHandler()
    real_record = ledger_module.record
    calls = {"n": 0}

    def record(engine, issue_id, outcomes, now):
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_record(engine, issue_id, outcomes, now)

    with serving(handler) as port:
        config = configure(port, readers=40, connections=2)
        monkeypatch.setattr(send_module.send_ledger, "record", record)
        started = time.monotonic()
        with pytest.raises(DatabaseError) as err:
            send_issue(config, built, secrets=SECRETS, clock=now_utc)
        assert time.monotonic() - started < 20
        assert "could not record a result in the database" in str(err.value)
        assert "No space left on device" in str(err.value)
        monkeypatch.setattr(send_module.send_ledger, "record", real_record)
        result = send_issue(config, built, secrets=SECRETS, clock=now_utc)
    assert result.ledger == {"sent": 40}
    copies = stored_per_reader(handler)
    assert len(copies) == 40
    assert sum(copies.values()) - 40 <= 2  # at most the messages in flight, one a connection
    assert statuses(config) == {"active": 40}


def test_a_full_disk_at_the_capture_server_is_a_transient_refusal(built, configure, monkeypatch):
    import mailbox  # noqa: PLC0415

    def full(self, message):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mailbox.Maildir, "add", full)
    config = configure(2525, max_attempts=2, max_transient_failures=3)  # port unused
    config = config.model_copy(update={"smtp": config.smtp.model_copy(update={"host": "builtin"})})
    result = send_issue(config, built, secrets=SECRETS, clock=now_utc)
    assert result.report.paused.startswith(
        "paused after 3 transient failures in a row, the last: 452 4.3.1"
    )
    assert result.report.failed == result.report.bounced == 0
    assert statuses(config) == {"active": 5}


class SlowHandler:
    """Accepts everything, a little slowly, and counts messages per recipient."""

    def __init__(self) -> None:
        self.copies: Counter[str] = Counter()

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(0.02)
        self.copies[envelope.rcpt_tos[0]] += 1
        return "250 OK"


@pytest.mark.slow
def test_a_scheduler_killed_mid_send_finishes_the_issue_when_restarted(
    tmp_path, configure, prepare
):
    handler = SlowHandler()
    with serving(handler) as port:
        config = configure(port, readers=150)
        issue = tmp_path / "built.pickle"
        issue.write_bytes(pickle.dumps(prepare(config, date(2024, 7, 19)).built))
        env = {**os.environ, "NEWSLETTER_UNSUBSCRIBE_SECRET": "schedule-test-secret"}
        command = [sys.executable, "-m", "tests.schedrun", str(config.source)]

        def start(moment: str) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [*command, moment, str(issue)],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )

        first = start("2024-07-19T17:29:58-04:00")
        deadline = time.monotonic() + 120
        while sum(handler.copies.values()) < 30 and time.monotonic() < deadline:
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            time.sleep(0.05)
        first.kill()  # SIGKILL mid-send: no cleanup, no retry added after it returned
        first.communicate()
        killed_at = len(handler.copies)
        assert 30 <= killed_at < 150
        second = start("2024-07-19T17:40:00-04:00")
        while len(handler.copies) < 150 and time.monotonic() < deadline:
            assert second.poll() is None, second.stderr.read() if second.stderr else ""
            time.sleep(0.1)
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=60)
    assert len(handler.copies) == 150, err.decode()
    assert sum(handler.copies.values()) - 150 <= 1  # the one in flight when it was killed
    assert b"resuming the unfinished send of the issue for 2024-07-19" in err
