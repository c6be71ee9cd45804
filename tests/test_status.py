"""An issue's life as the editor sees it: drafted, built, approved, sending, partly sent, not
delivered, sent; a change after readers got it (refused, corrected, cancelled); and the public
site, which shows only what a reader has. Every send goes through a real SMTP server."""

from __future__ import annotations

import re
import socket
from collections import Counter
from datetime import date

import pytest
import sqlalchemy as sa

from newsletter.app.drafts import notes_path
from newsletter.app.review import approve_issue
from newsletter.app.send import cancel_send, latest_unfinished, send_issue
from newsletter.app.site import Site
from newsletter.app.status import IssueState, issue_status, issue_statuses
from newsletter.app.wiring import database
from newsletter.cli import main
from newsletter.config import load_config, resolve_secrets
from newsletter.errors import IssueChangedError, NewsletterError
from tests.conftest import both_databases, now_utc

DAY = date(2024, 7, 19)
SECRETS = {"NEWSLETTER_UNSUBSCRIBE_SECRET": "status-test-secret"}
READERS = 5


@pytest.fixture
def setup(write_config, smtp_server, tmp_path, prepare, database_url):
    """A config on a real SMTP server (on SQLite and on PostgreSQL), its secrets, and a build
    that writes the issue folder."""
    path = write_config(
        database={"url": database_url},
        smtp={"host": smtp_server.host, "port": smtp_server.port},
        delivery={"max_attempts": 1, "retry_backoff_s": 0},
        paths={"notes_dir": str(tmp_path / "issues")},
    )
    config = load_config(path)
    return config, resolve_secrets(config, SECRETS), lambda: prepare(config, DAY).built, path


def _state(config):
    status = issue_status(config, DAY, now_utc())
    assert status.line().startswith(f"{status.state}: ")  # every line names its state first
    assert status.line() == f"{status.state}: {status.detail()}"
    return status


def _write_note(config, text):
    path = notes_path(config, DAY)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@both_databases
def test_an_issue_goes_from_nothing_to_sent_and_says_so_at_each_step(setup, smtp_server):
    config, secrets, build, _ = setup
    assert _state(config).state is IssueState.NEW
    path = _write_note(config, "A quiet week.\n")
    assert (_state(config).state, _state(config).line()) == (
        IssueState.DRAFTED,
        f"drafted: {path}; not built yet",
    )
    built = build()
    assert _state(config).state is IssueState.BUILT
    assert _state(config).line().endswith("not approved, not sent")
    approve_issue(config, built, now_utc())
    assert _state(config).state is IssueState.APPROVED
    assert _state(config).line(built).endswith(", this content; not sent")
    _write_note(config, "A quieter week.\n")
    changed = build()
    assert _state(config).line(changed).endswith(", not this content: approve again; not sent")
    smtp_server.handler.refuse["grace.hopper@example.org"] = "550 5.1.1 No such user"
    send_issue(config, changed, secrets=secrets, clock=now_utc)
    status = _state(config)
    assert status.state is IssueState.SENT
    line = status.line()
    assert re.match(rf"sent: to {READERS - 1} of {READERS} reader\(s\) (at|from) ", line)
    assert line.endswith("; 1 bounced, by run 1")
    details = "\n".join(status.details())
    assert "Ledger:   1 bounced, 4 sent" in details
    assert "Bounced: 1 message(s): 550 5.1.1 No such user" in details
    assert f"content {changed.content_sha256[:12]}" in details
    assert status.sent_warning(changed) is None  # what they got is what is built


@both_databases
def test_deferred_messages_leave_it_partly_sent_until_cancelled(setup, smtp_server):
    config, secrets, build, _ = setup
    smtp_server.handler.refuse["alan.turing@example.com"] = "451 4.3.0 try again later"
    send_issue(config, build(), secrets=secrets, clock=now_utc)
    status = _state(config)
    assert status.state is IssueState.PARTLY_SENT
    assert status.line().startswith("partly sent: 4 of 5 sent; 1 deferred, by run 1")
    assert status.line().endswith(f"(`newsletter send --as-of {DAY.isoformat()}` goes on)")
    assert latest_unfinished(config) == DAY
    assert cancel_send(config, DAY, now_utc()) == 1
    assert latest_unfinished(config) is None  # no resume mails it any more
    assert _state(config).line().endswith("; 1 skipped, by run 1")
    assert "cancelled the rest" in "\n".join(_state(config).details())


def test_a_sender_working_elsewhere_shows_the_issue_sending(setup):
    config, _, build, _ = setup
    built = build()
    from newsletter.db import schema  # noqa: PLC0415

    engine = database(config)
    now = now_utc()
    with engine.begin() as conn:  # a run on another host, its heartbeat fresh: alive
        issue = conn.execute(
            schema.issues.insert().values(
                as_of=DAY, subject="s", content_sha256=built.content_sha256, created_at=now
            )
        ).inserted_primary_key[0]
        conn.execute(
            schema.runs.insert().values(
                issue_id=issue,
                host=f"not-{socket.gethostname()}",
                pid=1,
                started_at=now,
                heartbeat_at=now,
            )
        )
    status = _state(config)
    assert (status.state, status.line()) == (
        IssueState.SENDING,
        "sending: 0 of 0 sent; its readers not listed yet, by run 1 (a sender is working)",
    )
    with engine.begin() as conn:
        conn.execute(
            schema.subscribers.insert().values(
                email="a@example.com",
                email_key="a@example.com",
                name="",
                status="active",
                source="test",
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            schema.ledger.insert().values(
                issue_id=issue,
                subscriber_id=1,
                email="a@example.com",
                name="",
                message_id="<m@x>",
                status="pending",
                attempts=0,
                updated_at=now,
            )
        )
    assert _state(config).state is IssueState.SENDING
    assert (
        _state(config).line() == "sending: 0 of 1 sent; 1 pending, by run 1 (a sender is working)"
    )


@both_databases
def test_a_change_after_readers_got_it_is_refused_then_corrected_only_for_the_rest(
    setup, smtp_server
):
    config, secrets, build, _ = setup
    send_issue(config, build(), secrets=secrets, clock=now_utc)
    assert len(smtp_server.envelopes) == READERS
    _write_note(config, "Correction: the spread was 1.2 points.\n")
    changed = build()
    warning = _state(config).sent_warning(changed)
    assert warning is not None and warning.startswith(f"{READERS} reader(s) already have issue")
    assert _state(config).sent_warning() is not None  # draft/approve say it without a build
    late = "late.reader@example.net"
    from newsletter.app.audience import add_subscriber  # noqa: PLC0415

    add_subscriber(config, late, "", now_utc())
    with pytest.raises(IssueChangedError) as refused:
        send_issue(config, changed, secrets=secrets, clock=now_utc)
    message = str(refused.value)
    assert f"changed since {READERS} reader(s) received it" in message
    assert str(config.archive_dir / DAY.isoformat()) in message
    assert "--corrected" in message and "--cancel" in message
    assert len(smtp_server.envelopes) == READERS  # nobody got the changed content
    send_issue(config, changed, secrets=secrets, clock=now_utc, corrected=True)
    got = Counter(rcpt for envelope in smtp_server.envelopes for rcpt in envelope.rcpt_tos)
    assert got[late] == 1 and set(got.values()) == {1}  # each reader exactly once
    assert b"1.2 points" in smtp_server.envelopes[-1].original_content
    details = "\n".join(_state(config).details())
    assert f"after {READERS} reader(s) had it" in details
    with database(config).connect() as conn:
        from newsletter.db.schema import corrections  # noqa: PLC0415

        (row,) = conn.execute(sa.select(corrections)).all()
    assert row.content_sha256 == changed.content_sha256 and row.readers_before == READERS


def test_the_site_publishes_only_issues_a_reader_has(setup, smtp_server):
    config, secrets, build, _ = setup
    built = build()
    smtp_server.handler.refuse.update(
        {
            address: "550 5.7.1 Rejected by policy of the recipient"
            for address in (
                "ada.lovelace@example.com",
                "grace.hopper@example.org",
                "alan.turing@example.com",
                "katherine.johnson@example.org",
                "edsger.dijkstra@example.com",
            )
        }
    )
    site = Site(config, None)
    with pytest.raises(
        NewsletterError
    ):  # 5.7.x is the sender's fault: the run stops, nobody has it
        send_issue(config, built, secrets=secrets, clock=now_utc)
    assert (config.archive_dir / DAY.isoformat() / "index.html").is_file()  # staged, not public
    assert site.published() == []
    assert site.issue_file(DAY.isoformat(), "") is None
    assert DAY.isoformat().encode() not in site.feed()
    smtp_server.handler.refuse.clear()
    send_issue(config, built, secrets=secrets, clock=now_utc)
    assert [issue.as_of for issue in site.published()] == [DAY]
    assert site.issue_file(DAY.isoformat(), "") is not None
    assert DAY.isoformat().encode() in site.feed()


def test_status_lists_issues_newest_first_and_one_in_detail(setup, capsys):
    config, secrets, build, path = setup
    send_issue(config, build(), secrets=secrets, clock=now_utc)
    later = date(2024, 7, 26)
    notes = config.paths.notes_dir / later.isoformat() / "notes.md"
    notes.parent.mkdir(parents=True)
    notes.write_text("Next week.\n")
    assert [status.as_of for status in issue_statuses(config, now_utc())] == [later, DAY]
    assert main(["status", "--config", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{later.isoformat()}  drafted: {notes}; not built yet"
    assert re.match(rf"{DAY.isoformat()}  sent: to 5 of 5 reader\(s\) (at|from) ", lines[1])
    assert main(["status", "--config", str(path), "--as-of", DAY.isoformat()]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Issue {DAY.isoformat()}: sent: to 5 of 5")
    assert "Ledger:   5 sent" in out and "Run 1:" in out


def test_send_cancel_names_the_issue_it_needs_and_says_what_it_did(setup, smtp_server, capsys):
    config, secrets, build, path = setup
    assert main(["send", "--config", str(path), "--cancel"]) == 2
    assert "--cancel needs the issue's --as-of" in capsys.readouterr().err
    smtp_server.handler.refuse["alan.turing@example.com"] = "451 4.3.0 try again later"
    send_issue(config, build(), secrets=secrets, clock=now_utc)
    assert main(["send", "--config", str(path), "--as-of", DAY.isoformat(), "--cancel"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"  Cancelled: 1 message(s) of issue {DAY.isoformat()} will not be sent"
    assert re.match(r"  State:   sent: to 4 of 5 reader\(s\) (at|from) ", out[1])
