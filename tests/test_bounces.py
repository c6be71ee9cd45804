"""The bounce mailbox, read from a real Maildir on disk into a real database: each fixture (the
shapes Postfix, Exim, Gmail, Microsoft 365 and Yahoo's feedback loop send, and a mailto
unsubscribe) does what the README says, once; soft bounces count N within M days; nothing
forged, foreign or unreadable changes anybody.

The issues and their ledger rows are made with the database layer (no message is built here:
tests/test_bounces_send.py sends real ones); every VERP token is computed by tests/bouncemail.py
from the specification.
"""

from __future__ import annotations

import email
from datetime import UTC, date, datetime, timedelta

import pytest
from flufl.bounce import all_failures

from newsletter.app.audience import subscriber_record
from newsletter.cli import main
from newsletter.db.schema import bounce_events, subscriber_events
from newsletter.mail.bounces import Severity, severity
from newsletter.mail.verp import make_bounce_token, verify_bounce_token, verp_address, verp_token
from newsletter.models import CONTROL, InboundKind
from tests import bouncemail
from tests.conftest import both_databases

KEY, NOW, ISSUES, DAY = bouncemail.KEY, bouncemail.NOW, bouncemail.ISSUES, bouncemail.DAY
ADA, GRACE, ALAN = "ada.lovelace@example.com", "grace.hopper@example.org", "alan.turing@example.com"
KATHERINE, EDSGER = "katherine.johnson@example.org", "edsger.dijkstra@example.com"
EVERYONE = (ADA, GRACE, ALAN, KATHERINE, EDSGER)
Project = bouncemail.Project


@pytest.fixture
def project(write_config, tmp_path, database_url) -> Project:
    return bouncemail.make_project(write_config, tmp_path / "bounces", database_url)


def test_the_token_is_short_lower_case_base32_and_signed():
    issue_id, subscriber_id = 7, 123_456
    made = make_bounce_token(KEY, bouncemail.LIST_ID, issue_id, subscriber_id)
    assert made == bouncemail.token(KEY, issue_id, subscriber_id)
    assert len(made) == 29 and set(made) <= set("abcdefghijklmnopqrstuvwxyz234567")
    address = verp_address(bouncemail.BOUNCES, made)
    assert address == f"bounces+{made}@example.com"
    assert len(address.partition("@")[0]) <= 64
    assert verp_token(bouncemail.BOUNCES, address.upper()) == made  # whatever the case
    assert verify_bounce_token(KEY, bouncemail.LIST_ID, made.upper()) == (7, 123_456)
    flipped = made[:-1] + ("a" if made[-1] != "a" else "b")
    for forged in (flipped, made[:-1], made + "a", "", "!" * 29):
        assert verify_bounce_token(KEY, bouncemail.LIST_ID, forged) is None
    assert verify_bounce_token(b"another key", bouncemail.LIST_ID, made) is None
    assert verify_bounce_token(KEY, "other-list.example.com", made) is None
    assert verp_token(bouncemail.BOUNCES, f"bounces+{made}@example.org") is None
    assert verp_token(bouncemail.BOUNCES, f"other+{made}@example.com") is None


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        ("5.1.1", "", Severity.HARD),
        ("5.1.10", "RESOLVER.ADR.RecipientNotFound", Severity.HARD),
        ("5.1.2", "bad destination system", Severity.HARD),
        ("5.7.1", "blocked: spam", Severity.POLICY),
        ("5.2.2", "mailbox full", Severity.SOFT),
        ("5.4.4", "unable to route", Severity.SOFT),
        ("4.2.2", "user unknown", Severity.SOFT),
        ("4.4.1", "connection timed out", Severity.SOFT),
        ("5.0.0", "550 User unknown", Severity.HARD),
        ("5.0.0", "550 rejected", Severity.SOFT),
        ("", "550 No such user here", Severity.HARD),
        ("", "The email account that you tried to reach does not exist", Severity.HARD),
        ("", "quota exceeded", Severity.SOFT),
    ],
)
def test_the_severity_rule(status, text, expected):
    assert severity(status, text) is expected


CASES = [
    # fixture, whose message it bounced, what it is, their status afterwards
    ("postfix-hard-5.1.1.eml", GRACE, InboundKind.HARD, "bounced"),
    ("exim-hard.eml", ALAN, InboundKind.HARD, "bounced"),
    ("gmail-hard.eml", KATHERINE, InboundKind.HARD, "bounced"),
    ("microsoft-hard-5.1.10.eml", EDSGER, InboundKind.HARD, "bounced"),
    ("postfix-soft-4.2.2.eml", ADA, InboundKind.SOFT, "active"),
    ("postfix-delayed.eml", ADA, InboundKind.IGNORED, "active"),
    ("arf-yahoo-abuse.eml", ADA, InboundKind.COMPLAINT, "complained"),
    ("mailto-unsubscribe.eml", ADA, InboundKind.UNSUBSCRIBE, "unsubscribed"),
]


MADE_BY = {
    "postfix-hard-5.1.1.eml": "a hard bounce (5.1.1) of issue 2024-07-16",
    "exim-hard.eml": "a hard bounce (5.1.1) of issue 2024-07-16",
    "gmail-hard.eml": "a hard bounce (5.1.1) of issue 2024-07-16",
    "microsoft-hard-5.1.10.eml": "a hard bounce (5.1.10) of issue 2024-07-16",
    "arf-yahoo-abuse.eml": "a complaint about issue 2024-07-16",
    "mailto-unsubscribe.eml": "their mail to unsubscribe@example.com",
}


@pytest.mark.parametrize(("name", "reader", "kind", "after"), CASES, ids=[c[0] for c in CASES])
@both_databases
def test_each_fixture_is_processed_once_from_a_maildir(project, name, reader, kind, after):
    data = bouncemail.fixture(name, project.token(reader))
    project.deliver(data)
    report = project.process()
    assert report.counts == {kind: 1}
    expected = dict.fromkeys(EVERYONE, "active") | {reader: after}
    assert project.statuses() == expected
    events = project.rows(bounce_events)
    assert events == (0 if kind is InboundKind.IGNORED else 1)
    if after != "active":
        record = subscriber_record(project.config, reader)
        assert record is not None
        (_, status, by) = record.events[-1]
        assert str(status) == after
        assert by.startswith(MADE_BY[name])  # who made the change is recorded
        assert report.changes == [(reader, status, by)]
    again = project.process()
    assert again.counts == {} and again.earlier == 1
    assert project.statuses() == expected
    assert project.rows(bounce_events) == events


@pytest.mark.parametrize(
    ("name", "reader", "kind", "after"), CASES[:6], ids=[c[0] for c in CASES[:6]]
)
def test_gnu_mailmans_detectors_read_each_bounce_fixture_as_such(name, reader, kind, after):
    """The fixtures are what flufl.bounce (Mailman's detectors) knows: each names its reader,
    as temporary for the delay notice and the mailbox full that Postfix gave up on."""
    temporary, permanent = all_failures(email.message_from_bytes(bouncemail.fixture(name, "t")))
    delayed = name == "postfix-delayed.eml"
    assert (temporary if delayed else temporary | permanent) == {reader.encode()}


def _soft(project: Project, as_of: date, n: int) -> bytes:
    return bouncemail.fixture(
        "postfix-soft-4.2.2.eml",
        project.token(ADA, as_of),
        **{"20240722123044.4WQ9bK3xLmz4wG1": f"2024072{n}.unique{n}"},
    )


BASE = datetime(2024, 7, 22, 12, 0, tzinfo=UTC)
SOFT_CASES = [
    # (issue index, days after BASE it arrived) of each soft bounce of Ada's, in delivery order
    ([(0, 0), (1, 7), (2, 14)], "bounced", "three issues within 30 days"),
    ([(0, 0), (1, 7)], "active", "two: one short of the limit"),
    ([(0, 0), (1, 20), (2, 40)], "active", "the first aged out"),
    ([(0, 0), (0, 1), (0, 2)], "active", "three of one issue count once"),
    ([(2, 14), (0, 0), (1, 7)], "bounced", "read out of order"),
    ([(0, 0), (1, 10), (2, 29), (3, 45)], "bounced", "three within 30 days of four"),
]


@pytest.mark.parametrize(("bounces", "after", "why"), SOFT_CASES, ids=[c[2] for c in SOFT_CASES])
@both_databases
def test_n_soft_bounces_within_m_days_bounce_a_subscriber(project, bounces, after, why):
    for n, (issue, days) in enumerate(bounces):
        project.deliver(_soft(project, ISSUES[issue], n), BASE + timedelta(days=days))
    report = project.process()
    assert report.counts[InboundKind.SOFT] == len(bounces)
    assert project.statuses()[ADA] == after
    assert set(project.statuses().values()) - {"active"} == ({after} - {"active"})
    if after == "bounced":
        (_, _, by) = subscriber_record(project.config, ADA).events[-1]
        assert "3 soft bounces within 30 days" in by


def test_soft_bounces_before_a_resubscribe_do_not_count_again(project, capsys):
    for n, days in enumerate((0, 7, 14)):
        project.deliver(_soft(project, ISSUES[n], n), BASE + timedelta(days=days))
    project.process()
    assert project.statuses()[ADA] == "bounced"
    argv = ["subscribers", "add", ADA, "--resubscribe", "--config", str(project.path)]
    assert main(argv) == 0
    project.deliver(_soft(project, ISSUES[3], 3), NOW)  # after the resubscribe: one, not four
    assert project.process().counts == {InboundKind.SOFT: 1}
    assert project.statuses()[ADA] == "active"


def test_the_same_bounce_twice_counts_once(project):
    data = _soft(project, DAY, 0)
    project.deliver(data, BASE)
    project.deliver(data, BASE + timedelta(minutes=1))
    report = project.process()
    assert report.counts == {InboundKind.SOFT: 1, InboundKind.DUPLICATE: 1}
    assert project.rows(bounce_events) == 1


def _forged(project: Project) -> list[tuple[bytes, str]]:
    grace = project.token(GRACE)
    flipped = grace[:-1] + ("a" if grace[-1] != "a" else "b")
    other_key = bouncemail.token(b"not our key", project.issues[DAY], project.ids[GRACE])
    never_sent = bouncemail.token(KEY, 999, project.ids[GRACE])
    hard = "postfix-hard-5.1.1.eml"
    return [
        (bouncemail.fixture(hard, flipped), "a forged or unknown VERP token"),
        (bouncemail.fixture(hard, other_key), "a forged or unknown VERP token"),
        (bouncemail.fixture(hard, never_sent), "names issue id 999"),
        (bouncemail.fixture(hard, "", **{"bounces+@": "bounces@"}), "no VERP token"),
        (
            bouncemail.fixture(hard, grace, **{GRACE: "someone.else@example.net"}),
            f"a bounce for someone.else@example.net, not {GRACE}",
        ),
        (
            bouncemail.fixture(hard, grace, **{"5.1.1": "5.7.1", "User unknown": "Blocked"}),
            "a policy refusal",
        ),
        (b"\x00\xff\xfe not a mail message at all", "not a mail message"),
        (
            bouncemail.fixture("mailto-unsubscribe.eml", **{"Ada.Lovelace": "mallory"}),
            "mallory@example.com, who is not a subscriber: nothing changed",
        ),
        (
            bouncemail.fixture("arf-yahoo-abuse.eml", flipped),
            "a forged or unknown VERP token",
        ),
        (  # escape sequences for a terminal, in the token, then in the reported recipient
            bouncemail.fixture(hard, "\x1b[2Jx"),
            "no VERP token",
        ),
        (
            bouncemail.fixture(hard, grace, **{GRACE: "\x1b]0;x\x07@example.org"}),
            "a bounce for",
        ),
    ]


@both_databases
def test_nothing_forged_foreign_or_unreadable_changes_anybody(project):
    cases = _forged(project)
    keys = {project.deliver(data): why for data, why in cases}
    report = project.process()
    assert report.counts == {InboundKind.IGNORED: len(cases)}
    ignored = dict(report.ignored)
    for key, why in keys.items():
        assert why in ignored[key], (why, ignored[key])
        assert not CONTROL.search(ignored[key])
    assert project.statuses() == dict.fromkeys(EVERYONE, "active")
    assert project.rows(bounce_events) == 0
    assert project.rows(subscriber_events) == 0


def test_status_and_the_list_show_what_the_mailbox_said(project, capsys):
    project.deliver(bouncemail.fixture("postfix-hard-5.1.1.eml", project.token(GRACE)))
    project.deliver(bouncemail.fixture("postfix-soft-4.2.2.eml", project.token(ADA)))
    project.deliver(bouncemail.fixture("mailto-unsubscribe.eml"))
    project.process()
    config = str(project.path)
    assert main(["status", "--config", config]) == 0
    out = capsys.readouterr().out.splitlines()
    assert (
        out[-1]
        == "Mailbox: 3 message(s) read, the last at 2024-08-30 12:00 UTC: 1 hard, 1 soft, 1 unsubscribe"
    )
    assert main(["status", "--config", config, "--as-of", DAY.isoformat()]) == 0
    assert "  Bounces:  1 hard, 1 soft (from the bounce mailbox)" in capsys.readouterr().out
    assert main(["subscribers", "list", "--config", config]) == 0
    err = capsys.readouterr().err
    assert err == (
        "5 subscriber(s): 3 active, 1 unsubscribed, 1 bounced; from the bounce mailbox: "
        "1 hard, 1 soft, 1 unsubscribe\n"
    )
    assert main(["subscribers", "show", ADA, "--config", config]) == 0
    shown = capsys.readouterr().out
    assert "unsubscribed, by their mail to unsubscribe@example.com" in shown
    assert "mailbox: soft: a soft bounce (4.2.2) of issue 2024-07-16" in shown
