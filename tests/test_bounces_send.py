"""Bounces of real sent messages: each message goes out with its own VERP envelope sender, a
bounce built to one captured message's Return-Path bounces exactly that reader, a complaint
keeps its reader out of the next send, the schedule reads the mailbox first (and sends anyway
when the mailbox fails), and the command's errors are one line each."""

from __future__ import annotations

import email
import logging
import mailbox
import re
from datetime import UTC, datetime
from email import policy

import pytest

from newsletter.app.audience import subscribers
from newsletter.app.bounces import process_mailbox
from newsletter.app.send import send_issue, send_test
from newsletter.cli import main
from newsletter.config import Secrets, load_config
from newsletter.schedule import RunOutcome, run_once
from tests import bouncemail
from tests.conftest import now_utc

KEY = b"a-test-key-that-signs-links-0123"
SECRETS = Secrets(unsubscribe_key=KEY)
ADA, GRACE = "ada.lovelace@example.com", "grace.hopper@example.org"
VERP = re.compile(r"^bounces\+([a-z2-7]{29})@example\.com$")


@pytest.fixture
def configure(write_config, tmp_path):
    def make(**smtp):
        path = write_config(
            newsletter={"bounce_address": bouncemail.BOUNCES},
            bounces={"maildir": str(tmp_path / "bounces")},
            smtp=smtp,
        )
        mailbox.Maildir(tmp_path / "bounces", create=True)
        return load_config(path), path

    return make


def _statuses(config):
    return {address: str(status) for address, _, status in subscribers(config)}


def test_a_bounce_to_a_sent_messages_return_path_bounces_exactly_its_reader(
    configure, build_day, tmp_path
):
    config, _ = configure()  # the built-in capture server, which keeps the envelope sender
    send_issue(config, build_day("2024-07-16"), secrets=SECRETS, clock=now_utc)
    outbox = mailbox.Maildir(config.outbox_dir, create=False)
    captured = [
        email.message_from_bytes(outbox.get_bytes(key), policy=policy.default)
        for key in outbox.iterkeys()
    ]
    senders = {str(m["X-Envelope-To"]): str(m["Return-Path"]).strip("<>") for m in captured}
    assert len(senders) == 5 and len(set(senders.values())) == 5  # one per message
    assert all(VERP.match(sender) for sender in senders.values())
    grace = next(m for m in captured if str(m["X-Envelope-To"]) == GRACE)
    token = VERP.match(senders[GRACE]).group(1)
    bounce = bouncemail.fixture(
        "postfix-hard-5.1.1.eml",
        token,
        **{
            "<2024-07-16.5f0c2e9a41b7d3c8e6a1f2b4@rotation-digest.example.com>": grace["Message-ID"]
        },
    )
    bouncemail.deliver(tmp_path / "bounces", bounce)
    report = process_mailbox(config, secrets=SECRETS, clock=now_utc)
    assert [(address, str(status)) for address, status, _ in report.changes] == [(GRACE, "bounced")]
    assert _statuses(config) == dict.fromkeys(senders, "active") | {GRACE: "bounced"}
    send_issue(config, build_day("2024-07-19"), secrets=SECRETS, clock=now_utc)
    recipients = [
        str(email.message_from_bytes(outbox.get_bytes(key))["X-Envelope-To"])
        for key in outbox.iterkeys()
    ]
    assert sorted(recipients) == sorted([*senders, *(set(senders) - {GRACE})])


def test_a_complaint_marks_its_reader_complained_and_the_next_send_skips_them(
    configure, build_day, smtp_server, tmp_path
):
    config, _ = configure(host=smtp_server.host, port=smtp_server.port)
    send_issue(config, build_day("2024-07-16"), secrets=SECRETS, clock=now_utc)
    mail_from = {env.rcpt_tos[0]: env.mail_from for env in smtp_server.envelopes}
    token = VERP.match(mail_from[ADA]).group(1)
    bouncemail.deliver(tmp_path / "bounces", bouncemail.fixture("arf-yahoo-abuse.eml", token))
    process_mailbox(config, secrets=SECRETS, clock=now_utc)
    assert _statuses(config)[ADA] == "complained"
    first = len(smtp_server.envelopes)
    send_issue(config, build_day("2024-07-19"), secrets=SECRETS, clock=now_utc)
    later = sorted(env.rcpt_tos[0] for env in smtp_server.envelopes[first:])
    assert later == sorted(set(mail_from) - {ADA})


def test_a_test_copy_goes_from_the_bare_bounce_address_and_without_it_from_the_from_address(
    configure, write_config, build_day, smtp_server
):
    config, _ = configure(host=smtp_server.host, port=smtp_server.port)
    send_test(config, build_day("2024-07-16"), "you@example.com", secrets=SECRETS, clock=now_utc)
    assert smtp_server.envelopes[-1].mail_from == bouncemail.BOUNCES
    plain = load_config(
        write_config(
            newsletter={"bounce_address": None},
            smtp={"host": smtp_server.host, "port": smtp_server.port},
        )
    )
    send_issue(plain, build_day("2024-07-16"), secrets=SECRETS, clock=now_utc)
    assert {env.mail_from for env in smtp_server.envelopes[1:]} == {"digest@example.com"}


def test_the_schedule_reads_the_mailbox_first_and_sends_anyway_when_it_fails(
    configure, build_day, smtp_server, tmp_path, prepare, caplog
):
    config, _ = configure(host=smtp_server.host, port=smtp_server.port)
    send_issue(config, build_day("2024-07-16"), secrets=SECRETS, clock=now_utc)
    mail_from = {env.rcpt_tos[0]: env.mail_from for env in smtp_server.envelopes}
    token = VERP.match(mail_from[GRACE]).group(1)
    bouncemail.deliver(tmp_path / "bounces", bouncemail.fixture("postfix-hard-5.1.1.eml", token))
    first = len(smtp_server.envelopes)
    monday = datetime(2024, 7, 22, 12, 0, tzinfo=UTC)  # Friday's run, before Monday's open
    with caplog.at_level(logging.INFO, logger="newsletter.schedule"):
        outcome = run_once(config, secrets=SECRETS, clock=lambda: monday, prepare=prepare)
    assert outcome is RunOutcome.SENT
    assert sorted(env.rcpt_tos[0] for env in smtp_server.envelopes[first:]) == sorted(
        set(mail_from) - {GRACE}
    )
    assert any(r.message.startswith("mailbox  Maildir ") for r in caplog.records)
    broken = config.model_copy(
        update={"bounces": config.bounces.model_copy(update={"maildir": tmp_path / "gone"})}
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="newsletter.schedule"):
        outcome = run_once(broken, secrets=SECRETS, clock=lambda: monday, prepare=prepare)
    assert outcome is RunOutcome.SENT  # nothing left to send, and the failure did not stop it
    errors = [r.message for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith(f"mailbox not read (the Maildir {tmp_path}")


def test_the_command_says_what_it_did(configure, tmp_path, capsys):
    _, path = configure()
    bouncemail.deliver(tmp_path / "bounces", bouncemail.fixture("mailto-unsubscribe.eml"))
    bouncemail.deliver(tmp_path / "bounces", b"Subject: hello\n\nnot a bounce\n")
    assert main(["subscribers", "add", ADA, "--config", str(path)]) == 0
    capsys.readouterr()
    assert main(["bounces", "--config", str(path), "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"Maildir {tmp_path / 'bounces'}: 2 new message(s) (0 read before): 1 unsubscribe, "
        "1 ignored; 1 subscriber(s) changed"
    )
    assert lines[1] == f"  {ADA}: unsubscribed, by their mail to unsubscribe@example.com"
    assert re.fullmatch(r"  Not acted on: \S+: not a bounce, a complaint or a mail to .*", lines[2])


@pytest.mark.parametrize(
    ("bounces", "newsletter", "code", "message"),
    [
        ({}, {}, 2, "no bounce mailbox is set up: set bounces.maildir or bounces.imap_host"),
        ({"maildir": "{tmp}/missing"}, {}, 1, "the Maildir {tmp}/missing (bounces.maildir) does"),
        ({"maildir": "{tmp}"}, {}, 1, "{tmp} (bounces.maildir) is not a Maildir: it has no cur"),
        (
            {"maildir": "{tmp}", "imap_host": "imap.example.com"},
            {},
            2,
            "bounces: maildir and imap_host are both set: name one mailbox",
        ),
        ({"imap_host": "imap.example.com"}, {}, 2, "imap_host needs imap_username and"),
        (
            {"imap_host": "imap.example.com", "imap_username": "u", "imap_password_env": "IMAP_PW"},
            {},
            2,
            "IMAP password not found: env var IMAP_PW is unset",
        ),
        ({}, {"bounce_address": "bounces+x@example.com"}, 2, "must not contain '+'"),
        ({}, {"bounce_address": "b" * 35 + "@example.com"}, 2, "at most 34 characters"),
    ],
)
def test_bad_input_is_one_line_naming_what_and_where(
    write_config, tmp_path, capsys, monkeypatch, bounces, newsletter, code, message
):
    monkeypatch.delenv("IMAP_PW", raising=False)
    fill = {key: value.format(tmp=tmp_path) for key, value in bounces.items()}
    path = write_config(bounces=fill, newsletter=newsletter)
    assert main(["bounces", "--config", str(path), "--quiet"]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("Error: ")
    assert message.format(tmp=tmp_path) in err


def test_check_config_checks_the_imap_password_and_never_prints_it(
    write_config, capsys, monkeypatch
):
    imap = {"imap_host": "imap.example.com", "imap_username": "u", "imap_password_env": "IMAP_PW"}
    path = str(write_config(bounces=imap))
    monkeypatch.delenv("IMAP_PW", raising=False)
    assert main(["check-config", "--config", path]) == 2
    assert "IMAP password not found: env var IMAP_PW is unset" in capsys.readouterr().err
    monkeypatch.setenv("IMAP_PW", "imap-secret-value-1234")
    assert main(["check-config", "--config", path]) == 0
    out = capsys.readouterr().out
    assert "IMAP password: set" in out and "imap-secret-value-1234" not in out
