"""Signup with double opt-in, below the web server: the answer, the rate limits, the
confirmation mail (through the real sender into the built-in server's Maildir), its link, the
consent record, expiry and forgetting; on SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
import hashlib
import mailbox
import re
import subprocess
from datetime import timedelta

import dkim
import pytest
import sqlalchemy as sa

from newsletter.app import signup
from newsletter.app.audience import add_subscriber, import_csv, remove_subscriber, subscribers
from newsletter.app.notices import deliver_notices
from newsletter.app.wiring import database
from newsletter.cli import main
from newsletter.config import Secrets, load_config, resolve_secrets
from newsletter.db import notices as notice_store
from newsletter.db import runs
from newsletter.db.audience import set_subscriber_status
from newsletter.db.schema import mailbox_messages, notices, signup_attempts, suppressions
from newsletter.db.schema import runs as runs_table
from newsletter.db.schema import subscribers as subscriber_table
from newsletter.models import SubscriberStatus
from tests.conftest import both_databases, now_utc
from tests.dkimkeys import DOMAIN, SELECTOR, answering, pem

KEY = b"signup-test-key-signup-test-key!"
SECRETS = Secrets(unsubscribe_key=KEY)
CLIENT = "198.51.100.7"


@pytest.fixture
def config(write_config, database_url):
    return load_config(write_config(subscribers={"file": None}, database={"url": database_url}))


def join(config, address, *, client=CLIENT, name="", page="/signup", honeypot="", now=None):
    form = signup.SignupForm(address, name, page, honeypot)
    return signup.sign_up(config, KEY, form, client, now or now_utc()).answer


def outbox(config):
    """Every message the built-in server filed, parsed, oldest first."""
    box = mailbox.Maildir(config.outbox_dir, create=False)
    found = [
        email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        for key in box.iterkeys()
    ]
    return sorted(found, key=lambda message: message["Date"].datetime)


def confirmations(config):
    return [mail for mail in outbox(config) if mail["Subject"].startswith("Confirm")]


def text_of(message):
    return message.get_body(preferencelist=("plain",)).get_content()


def link_in(message):
    """The confirmation (or unsubscribe) URL on its own line of the text part."""
    return re.search(r"^(https://\S+)\r?$", text_of(message), re.MULTILINE).group(1)


def token_of(url):
    return url.rsplit("/", 1)[1]


def row(config, address):
    with database(config).connect() as conn:
        return conn.execute(
            sa.select(subscriber_table).where(subscriber_table.c.email_key == address.lower())
        ).first()


@both_databases
def test_a_signup_is_confirmed_by_the_mailed_link_and_then_welcomed(config):
    assert join(config, "New.Reader@Example.com", name="Nia", page="/") is signup.SignupAnswer.SENT
    added = row(config, "new.reader@example.com")
    assert (added.status, added.joined_via, added.source) == ("unconfirmed", "signup", "/")
    assert added.confirmed_at is None
    assert ("New.Reader@example.com", "Nia", "unconfirmed") in list(subscribers(config))

    report = deliver_notices(config, SECRETS, now_utc)
    assert report.sent == 1
    [mail] = outbox(config)
    assert mail["To"].addresses[0].addr_spec == "New.Reader@example.com"
    assert mail["Subject"] == "Confirm your subscription to Rotation Digest"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert "List-Unsubscribe" not in mail  # nobody is subscribed yet
    url = link_in(mail)
    assert url.startswith("https://digest.example.com/confirm/")
    assert url in mail.get_body(preferencelist=("html",)).get_content()
    token = token_of(url)
    assert "new.reader" not in token.lower()  # the link names nobody

    assert signup.confirm_state(config, KEY, token, now_utc()) is signup.ConfirmState.ASK
    assert row(config, "new.reader@example.com").status == "unconfirmed"  # a GET changes nothing
    assert signup.confirm(config, KEY, token, now_utc()) is signup.ConfirmState.DONE
    confirmed = row(config, "new.reader@example.com")
    assert confirmed.status == "active" and confirmed.confirmed_at is not None
    assert signup.confirm(config, KEY, token, now_utc()) is signup.ConfirmState.ALREADY

    assert deliver_notices(config, SECRETS, now_utc).sent == 1
    [welcome] = [mail for mail in outbox(config) if mail["Subject"].startswith("Welcome")]
    assert welcome["Subject"] == "Welcome to Rotation Digest"
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link_in(welcome).startswith("https://digest.example.com/u/")
    assert deliver_notices(config, SECRETS, now_utc).sent == 0  # each goes once


@both_databases
def test_the_answer_is_the_same_for_new_waiting_active_and_departed_addresses(config):
    now = now_utc()
    add_subscriber(config, "active@example.com", "", now)
    add_subscriber(config, "gone@example.com", "", now)
    remove_subscriber(config, "gone@example.com", now, by="test")
    answers = [
        join(config, address, client=f"203.0.113.{n}")
        for n, address in enumerate(
            ["new@example.com", "new@example.com", "active@example.com", "gone@example.com"]
        )
    ]
    assert answers == [signup.SignupAnswer.SENT] * 4
    with database(config).connect() as conn:
        queued = conn.execute(sa.select(notices.c.email, notices.c.kind)).all()
    # one confirmation for the new address (the second signup finds it on its way), one for the
    # address that left (it needs a fresh confirmation), none for the active subscriber
    assert sorted(queued) == [("gone@example.com", "confirm"), ("new@example.com", "confirm")]
    assert row(config, "gone@example.com").status == "unsubscribed"  # until they confirm


@both_databases
def test_a_filled_honeypot_is_answered_alike_and_does_nothing(config):
    assert (
        join(config, "bot@example.com", honeypot="http://spam.example") is signup.SignupAnswer.SENT
    )
    assert row(config, "bot@example.com") is None


@both_databases
def test_a_bad_address_is_named_and_changes_nothing(config):
    result = signup.sign_up(config, KEY, signup.SignupForm("not-an-address"), CLIENT, now_utc())
    assert result.answer is signup.SignupAnswer.INVALID
    assert "'not-an-address' is not a valid email address" in result.problem
    with database(config).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(signup_attempts)).scalar() == 0


@both_databases
def test_one_client_gets_five_signups_an_hour_and_an_ipv6_network_counts_as_one(config):
    answers = [join(config, f"r{n}@example.com") for n in range(6)]
    assert answers == [signup.SignupAnswer.SENT] * 5 + [signup.SignupAnswer.LIMITED]
    assert row(config, "r5@example.com") is None
    assert join(config, "other@example.com", client="198.51.100.8") is signup.SignupAnswer.SENT
    later = now_utc() + timedelta(hours=1, minutes=1)
    assert join(config, "r5@example.com", now=later) is signup.SignupAnswer.SENT
    v6 = [join(config, f"v{n}@example.com", client=f"2001:db8:1:2::{n + 1:x}") for n in range(6)]
    # the same /64, however the host part changes (and apart from the IPv4 clients' counts)
    assert v6 == [signup.SignupAnswer.SENT] * 5 + [signup.SignupAnswer.LIMITED]


@both_databases
def test_an_address_gets_three_confirmation_mails_a_day(config):
    sent = 0
    for n in range(5):
        join(config, "again@example.com", client=f"192.0.2.{n}")
        sent += deliver_notices(config, SECRETS, now_utc).sent
    assert sent == 3
    assert len(outbox(config)) == 3


@both_databases
def test_a_link_used_after_the_subscriber_left_is_stale_and_a_new_signup_works(config):
    join(config, "fickle@example.com")
    deliver_notices(config, SECRETS, now_utc)
    token = token_of(link_in(outbox(config)[0]))
    assert signup.confirm(config, KEY, token, now_utc()) is signup.ConfirmState.DONE
    assert deliver_notices(config, SECRETS, now_utc).sent == 1  # the welcome
    remove_subscriber(config, "fickle@example.com", now_utc() + timedelta(seconds=1), by="test")
    assert signup.confirm(config, KEY, token, now_utc()) is signup.ConfirmState.ALREADY  # used
    later = now_utc() + timedelta(seconds=2)
    join(config, "fickle@example.com", client="192.0.2.99", now=later)
    assert deliver_notices(config, SECRETS, lambda: later).sent == 1
    [fresh] = {token_of(link_in(mail)) for mail in confirmations(config)} - {token}
    assert signup.confirm(config, KEY, fresh, later) is signup.ConfirmState.DONE
    assert row(config, "fickle@example.com").status == "active"


@both_databases
def test_an_unused_link_is_stale_once_the_status_changed(config):
    now = now_utc()
    add_subscriber(config, "left@example.com", "", now - timedelta(minutes=5))
    remove_subscriber(config, "left@example.com", now - timedelta(minutes=4), by="test")
    join(config, "left@example.com", now=now - timedelta(minutes=3))
    deliver_notices(config, SECRETS, now_utc)
    token = token_of(link_in(outbox(config)[0]))
    # they complain in the meantime: a status change after the link was made
    complained = SubscriberStatus.COMPLAINED
    at = now - timedelta(minutes=1)
    set_subscriber_status(database(config), "left@example.com", complained, at, by="complaint")
    assert signup.confirm_state(config, KEY, token, now) is signup.ConfirmState.STALE
    assert signup.confirm(config, KEY, token, now) is signup.ConfirmState.STALE
    assert row(config, "left@example.com").status == "complained"


@both_databases
def test_links_expire_with_their_signups_and_forged_ones_do_nothing(config):
    join(config, "late@example.com")
    deliver_notices(config, SECRETS, now_utc)
    token = token_of(link_in(outbox(config)[0]))
    days = config.signup.confirm_days
    after = now_utc() + timedelta(days=days, minutes=1)
    assert signup.confirm(config, KEY, token, after) is signup.ConfirmState.EXPIRED
    notice_id, expires, signature = token.split(".")
    for forged in (
        f"{int(notice_id) + 1}.{expires}.{signature}",
        f"{notice_id}.{int(expires) + 86400}.{signature}",
        f"{notice_id}.{expires}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}",
        "1.2",
        "",
    ):
        assert signup.confirm(config, KEY, forged, now_utc()) is signup.ConfirmState.INVALID
    other_list = config.model_copy(
        update={"newsletter": config.newsletter.model_copy(update={"list_id": "other.example.org"})}
    )
    assert signup.confirm(other_list, KEY, token, now_utc()) is signup.ConfirmState.INVALID
    assert row(config, "late@example.com").status == "unconfirmed"
    assert signup.expire_signups(config, now_utc() + timedelta(days=days - 1)) == 0
    assert signup.expire_signups(config, after) == 1
    assert row(config, "late@example.com") is None


@both_databases
def test_forget_erases_a_person_and_no_import_adds_them_again(config, tmp_path):
    now = now_utc()
    add_subscriber(config, "Erase.Me@example.com", "Eve", now)
    address, found = signup.forget_subscriber(config, "erase.me@example.com", now)
    assert found and address == "erase.me@example.com"
    assert row(config, "erase.me@example.com") is None
    with database(config).connect() as conn:
        kept = conn.execute(sa.select(suppressions.c.address_sha256)).scalars().all()
    assert kept == [hashlib.sha256(b"erase.me@example.com").hexdigest()]
    listed = tmp_path / "list.csv"
    listed.write_text("email,name\nERASE.ME@example.com,Eve\nkeep@example.com,Kim\n")
    _, report = import_csv(config, listed, now)
    assert (report.added, report.suppressed) == (1, 1)
    assert row(config, "erase.me@example.com") is None
    # their own confirmed signup lifts the suppression
    join(config, "erase.me@example.com")
    deliver_notices(config, SECRETS, now_utc)
    assert signup.confirm(config, KEY, token_of(link_in(outbox(config)[0])), now_utc()) is (
        signup.ConfirmState.DONE
    )
    with database(config).connect() as conn:
        assert conn.execute(sa.select(suppressions)).all() == []


def test_status_counts_the_list_by_status_and_the_mails_waiting(write_config, capsys):
    path = write_config(subscribers={"file": None})
    config = load_config(path)
    add_subscriber(config, "here@example.com", "", now_utc())
    join(config, "soon@example.com")
    assert main(["status", "--config", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "List: 2 subscriber(s): 1 active, 1 unconfirmed; confirmation and welcome mails: 1 waiting"
    )


@both_databases
def test_a_notice_claimed_by_a_run_that_died_goes_once_with_its_message_id(config):
    join(config, "crash@example.com")
    engine = database(config)
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = runs.start_run(engine, runs.NOTICE_QUEUE, now_utc())
    with engine.begin() as conn:
        conn.execute(sa.update(runs_table).where(runs_table.c.id == dead).values(pid=gone.pid))
    [claimed] = notice_store.claim(engine, dead, 10, now_utc())  # it died before sending
    assert deliver_notices(config, SECRETS, now_utc).sent == 1
    assert deliver_notices(config, SECRETS, now_utc).sent == 0
    assert [mail["Message-ID"] for mail in outbox(config)] == [claimed.delivery.message_id]


@pytest.mark.smtp_refuse({"nobody@example.com": "550 5.1.1 <nobody@example.com>: no such user"})
def test_a_refused_confirmation_is_recorded_and_touches_nobody(write_config, smtp_server):
    path = write_config(
        subscribers={"file": None}, smtp={"host": smtp_server.host, "port": smtp_server.port}
    )
    config = load_config(path)
    join(config, "nobody@example.com")
    join(config, "somebody@example.com", client="192.0.2.1")
    report = deliver_notices(config, SECRETS, now_utc)
    assert (report.sent, report.bounced) == (1, 1)
    with database(config).connect() as conn:
        refused = conn.execute(
            sa.select(notices.c.status, notices.c.last_reply).where(
                notices.c.email == "nobody@example.com"
            )
        ).one()
    assert refused.status == "bounced" and "5.1.1" in refused.last_reply
    assert row(config, "nobody@example.com").status == "unconfirmed"
    assert deliver_notices(config, SECRETS, now_utc).sent == 0  # a refusal is not retried
    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == ["somebody@example.com"]


def test_confirmation_and_welcome_mails_are_signed_with_dkim_when_it_is_set(
    write_config, dkim_key, tmp_path
):
    (tmp_path / "dkim.pem").write_bytes(pem(dkim_key))
    signing = {
        "domain": DOMAIN,
        "selector": SELECTOR,
        "private_key_file": str(tmp_path / "dkim.pem"),
    }
    config = load_config(write_config(subscribers={"file": None}, dkim=signing))
    secrets = resolve_secrets(config, {}).model_copy(update={"unsubscribe_key": KEY})
    join(config, "signed@example.com")
    deliver_notices(config, secrets, now_utc)
    signup.confirm(config, KEY, token_of(link_in(outbox(config)[0])), now_utc())
    deliver_notices(config, secrets, now_utc)
    box = mailbox.Maildir(config.outbox_dir, create=False)
    raw = [box.get_bytes(key) for key in box.iterkeys()]
    assert len(raw) == 2
    for message in raw:
        assert dkim.verify(message, dnsfunc=answering(dkim_key))
        assert (
            dkim.verify(
                message.replace(b"Subject: ", b"Subject: Re: ", 1), dnsfunc=answering(dkim_key)
            )
            is False
        )


def test_forget_also_erases_what_the_bounce_mailbox_noted_of_them(write_config):
    config = load_config(write_config(subscribers={"file": None}))
    add_subscriber(config, "noted@example.com", "", now_utc())
    notes = {
        "a": "their mail to unsubscribe@example.com (from Noted@Example.com)",
        "b": "a mail to unsubscribe@example.com from other@example.com, who is not a subscriber",
    }
    with database(config).begin() as conn:
        for key, detail in notes.items():
            conn.execute(
                mailbox_messages.insert().values(
                    mailbox="maildir",
                    message_key=key,
                    digest=key * 64,
                    processed_at=now_utc(),
                    outcome="unsubscribe",
                    detail=detail,
                )
            )
    signup.forget_subscriber(config, "noted@example.com", now_utc())
    with database(config).connect() as conn:
        kept = dict(
            conn.execute(sa.select(mailbox_messages.c.message_key, mailbox_messages.c.detail)).all()
        )
    assert "noted" not in kept["a"].lower()
    assert kept["b"] == notes["b"]
