"""Delivery against real SMTP servers on 127.0.0.1 that fail on purpose.

Each test sends the 2024-07-16 issue to the five sample subscribers and checks what the server
stored, what the ledger says and what the report counted.
"""

from __future__ import annotations

import email
import random
import smtplib
import string
import threading
from collections import Counter
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import pytest
import yaml

from newsletter.app.send import send_issue
from newsletter.config import Secrets, load_config
from newsletter.delivery.smtp import _PLAIN_ADDRESS
from newsletter.errors import DatabaseError, DeliveryError
from tests.conftest import both_databases

from .conftest import REPO, now_utc, serving
from .smtpfaults import ACCEPT, DROP, DROP_AFTER_STORE, STALL, GreetingServer, ScriptedHandler

SECRETS = Secrets(unsubscribe_key=b"k" * 32)
ADA, GRACE = "ada.lovelace@example.com", "grace.hopper@example.org"
EVERYONE = 5


@pytest.fixture(scope="module")
def built(build_day):
    return build_day("2024-07-16")


@pytest.fixture
def configure(tmp_path, database_url):
    """A config on a server at `port`, on SQLite and on PostgreSQL."""

    def make(port: int, **delivery):
        raw = {
            "templates": {"dir": str(REPO / "templates")},
            "paths": {"var_dir": str(tmp_path / "var")},
            "database": {"url": database_url},
            "smtp": {"host": "127.0.0.1", "port": port, "timeout_s": 1},
            "delivery": {"connections": 1, "retry_backoff_s": 0, "max_attempts": 3, **delivery},
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(raw))
        return load_config(path)

    return make


def stored_ids(handler: ScriptedHandler) -> Counter[str]:
    return Counter(
        str(email.message_from_bytes(env.original_content, policy=policy.default)["Message-ID"])
        for env in handler.stored
    )


def recipients(handler: ScriptedHandler) -> list[str]:
    return sorted(env.rcpt_tos[0] for env in handler.stored)


@pytest.mark.parametrize(
    "reply",
    ["450 4.2.1 mailbox busy", "451 4.3.0 try later", "452 4.2.2 full", "552 5.2.2 over quota"],
)
def test_a_temporary_rcpt_refusal_is_retried_until_accepted(built, configure, reply):
    handler = ScriptedHandler(rcpt={ADA: [reply, reply]})
    with serving(handler) as port:
        result = send_issue(configure(port), built, secrets=SECRETS, clock=now_utc)
    assert handler.attempts[ADA] == 3
    assert len(recipients(handler)) == EVERYONE
    assert result.report.retried == 2
    assert result.ledger == {"sent": EVERYONE}
    assert result.complete


@both_databases
def test_a_message_still_refused_after_max_attempts_is_deferred_then_sent_next_run(
    built, configure
):
    handler = ScriptedHandler(rcpt={ADA: ["451 4.3.0 try later"] * 3})
    with serving(handler) as port:
        config = configure(port)
        first = send_issue(config, built, secrets=SECRETS, clock=now_utc)
        assert first.ledger == {"sent": EVERYONE - 1, "deferred": 1}
        assert first.report.deferred == 1
        assert not first.complete
        second = send_issue(config, built, secrets=SECRETS, clock=now_utc)
    assert second.report.sent == 1
    assert second.ledger == {"sent": EVERYONE}
    assert recipients(handler).count(ADA) == 1


@pytest.mark.parametrize(
    ("reply", "status", "bounced"),
    [
        ("550 5.1.1 no such user", "bounced", True),
        ("553 5.1.3 bad address syntax", "bounced", True),
        ("550 mailbox unavailable", "failed", False),
    ],
)
def test_a_permanent_rcpt_refusal_is_recorded_and_not_retried(
    built, configure, reply, status, bounced
):
    handler = ScriptedHandler(rcpt={GRACE: [reply]})
    with serving(handler) as port:
        config = configure(port)
        result = send_issue(config, built, secrets=SECRETS, clock=now_utc)
        again = send_issue(config, built, secrets=SECRETS, clock=now_utc)
    assert handler.attempts[GRACE] == 1
    assert result.ledger == {"sent": EVERYONE - 1, status: 1}
    assert (result.report.bounced, result.report.failed) == ((1, 0) if bounced else (0, 1))
    assert result.report.refusals == [(GRACE, f"{status}: {reply}")]
    assert again.report.sent == 0


@pytest.mark.parametrize("reply", ["550 5.2.1 mailbox disabled", "554 5.2.0 not here"])
def test_a_permanent_rcpt_refusal_of_one_reader_fails_that_message_only(built, configure, reply):
    handler = ScriptedHandler(rcpt={ADA: [reply]})
    with serving(handler) as port:
        result = send_issue(configure(port), built, secrets=SECRETS, clock=now_utc)
    assert result.ledger == {"sent": EVERYONE - 1, "failed": 1}
    assert ADA not in recipients(handler)


def test_a_policy_block_stops_the_whole_run(built, configure):
    handler = ScriptedHandler(data={ADA: ["554 5.7.1 rejected by policy"]})
    with serving(handler) as port:
        config = configure(port)
        with pytest.raises(DeliveryError) as err:
            send_issue(config, built, secrets=SECRETS, clock=now_utc)
        assert "refused the run at data: 554 5.7.1 rejected by policy; nothing was sent" in str(
            err.value
        )
        assert handler.stored == []  # Ada is first: the run stopped before anyone else
        # Once the policy problem is fixed, the same command sends everything, once.
        result = send_issue(config, built, secrets=SECRETS, clock=now_utc)
    assert result.ledger == {"sent": EVERYONE}
    assert sorted(stored_ids(handler).values()) == [1] * EVERYONE


def test_a_connection_dropped_mid_data_is_resent_once(built, configure):
    handler = ScriptedHandler(data={ADA: [DROP]})
    with serving(handler) as port:
        result = send_issue(configure(port), built, secrets=SECRETS, clock=now_utc)
    assert result.ledger == {"sent": EVERYONE}
    assert recipients(handler).count(ADA) == 1
    assert result.report.retried == 1


@both_databases
def test_a_lost_reply_after_storing_is_the_one_documented_duplicate(built, configure):
    handler = ScriptedHandler(data={ADA: [DROP_AFTER_STORE]})
    with serving(handler) as port:
        result = send_issue(configure(port), built, secrets=SECRETS, clock=now_utc)
    ids = stored_ids(handler)
    assert result.ledger == {"sent": EVERYONE}
    assert len(ids) == EVERYONE
    duplicated = [message_id for message_id, count in ids.items() if count > 1]
    assert len(duplicated) == 1  # the same Message-ID twice: the receiver can drop the copy
    assert recipients(handler).count(ADA) == 2


def test_a_stalled_server_times_out_and_the_message_is_retried(built, configure):
    handler = ScriptedHandler(data={ADA: [STALL]}, stall_s=2.5)
    with serving(handler) as port:
        result = send_issue(configure(port), built, secrets=SECRETS, clock=now_utc)
    assert result.ledger == {"sent": EVERYONE}
    assert recipients(handler).count(ADA) == 1


def test_fail_n_times_then_accept(built, configure):
    handler = ScriptedHandler(
        rcpt={ADA: ["421 4.4.5 busy", "451 4.3.0 later"]}, data={GRACE: [DROP, ACCEPT]}
    )
    with serving(handler) as port:
        result = send_issue(configure(port, max_attempts=5), built, secrets=SECRETS, clock=now_utc)
    assert result.ledger == {"sent": EVERYONE}
    assert result.report.retried == 3
    assert sorted(stored_ids(handler).values()) == [1] * EVERYONE


def test_421_at_the_greeting_is_temporary(built, configure):
    with GreetingServer("421 4.3.2 too busy, come back later") as server:
        result = send_issue(
            configure(server.port, max_attempts=2), built, secrets=SECRETS, clock=now_utc
        )
    assert result.ledger == {"deferred": EVERYONE}
    assert not result.complete
    assert len(result.report.refusals) == EVERYONE
    assert all("421" in reply for _, reply in result.report.refusals)


def test_554_at_the_greeting_stops_the_run(built, configure):
    with GreetingServer("554 5.7.1 no service for you") as server:
        config = configure(server.port)
        with pytest.raises(
            DeliveryError, match=r"refused the run at connect: 554 5\.7\.1 no service"
        ):
            send_issue(config, built, secrets=SECRETS, clock=now_utc)
        assert server.connections == 1


@both_databases
def test_more_connections_and_a_rate_cap_still_send_each_message_once(built, configure):
    handler = ScriptedHandler()
    with serving(handler) as port:
        started = datetime.now(UTC)
        result = send_issue(
            configure(port, connections=3, rate_per_s=20), built, secrets=SECRETS, clock=now_utc
        )
        elapsed = (datetime.now(UTC) - started).total_seconds()
    assert result.ledger == {"sent": EVERYONE}
    assert sorted(stored_ids(handler).values()) == [1] * EVERYONE
    assert elapsed >= (EVERYONE - 1) / 20


@both_databases
def test_an_unsubscribed_reader_is_skipped_even_mid_issue(built, configure, tmp_path, database_url):
    from newsletter.app.audience import remove_subscriber  # noqa: PLC0415

    handler = ScriptedHandler(rcpt={ADA: ["451 4.3.0 later"] * 3})
    with serving(handler) as port:
        config = configure(port)
        send_issue(config, built, secrets=SECRETS, clock=now_utc)
        remove_subscriber(config, ADA, now_utc(), by="test")
        result = send_issue(config, built, secrets=SECRETS, clock=now_utc)
    assert result.ledger == {"sent": EVERYONE - 1, "skipped": 1}
    assert ADA not in recipients(handler)
    assert Path(tmp_path / "var" / "newsletter.db").is_file() == (database_url is None)


PLAIN_ADDRESSES = [
    "ada@example.com",
    "a.b+tag@mail.example.co.uk",
    "o'brien@example.ie",
    "x!#$%&'*+/=?^_`{|}~-y@example.com",
]
OTHER_ADDRESSES = [
    "ünïcode@example.com",
    "name@bücher.example",
    '"quoted local"@example.com',
    "Ada <ada@example.com>",
    "a..b@example.com",
    ".lead@example.com",
    "trail.@example.com",
    "a b@example.com",
    "a@b@example.com",
    "a(comment)@example.com",
    "a@[127.0.0.1]",
    "a@example..com",
    "<>",
    "",
]
ADDRESS_ALPHABET = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-.@ \"<>()[],;:\\"


@pytest.mark.parametrize(
    ("address", "plain"),
    [(a, True) for a in PLAIN_ADDRESSES] + [(a, False) for a in OTHER_ADDRESSES],
)
def test_the_fast_envelope_path_quotes_exactly_as_smtplib_does(address, plain):
    """MAIL FROM and RCPT TO skip smtplib.quoteaddr's parse for a plain dot-atom address:
    only where quoteaddr itself would give back <address> unchanged."""
    rng = random.Random(address)
    generated = ["".join(rng.choices(ADDRESS_ALPHABET, k=rng.randint(1, 24))) for _ in range(400)]
    for candidate in [address, *generated]:
        if _PLAIN_ADDRESS.fullmatch(candidate):
            assert smtplib.quoteaddr(candidate) == f"<{candidate}>", candidate
    assert bool(_PLAIN_ADDRESS.fullmatch(address)) == plain


def test_a_bug_outside_the_exchange_stops_the_run_and_loses_nothing(built, configure, monkeypatch):
    """A fault of this program between exchanges (here the rate limiter raising, as a bug
    would) stops the run with one line: the connection's worker goes on handing its jobs
    back, so the run ends instead of waiting forever for the job it lost, and the next run
    sends every message once."""
    from newsletter.delivery import sender  # noqa: PLC0415

    calls = {"n": 0}
    real_acquire = sender.RateLimiter.acquire

    def acquire_then_break(self):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("a bug in the limiter")
        real_acquire(self)

    handler = ScriptedHandler()
    with serving(handler) as port:
        config = configure(port, connections=2)
        monkeypatch.setattr(sender.RateLimiter, "acquire", acquire_then_break)
        ended: list[BaseException] = []

        def send() -> None:
            try:
                send_issue(config, built, secrets=SECRETS, clock=now_utc)
            except BaseException as err:
                ended.append(err)

        worker = threading.Thread(target=send, daemon=True)
        worker.start()
        worker.join(60)
        assert not worker.is_alive(), "the run waited forever for a job its worker lost"
        assert len(ended) == 1
        assert isinstance(ended[0], DatabaseError)
        assert "sending failed unexpectedly (a bug in the limiter)" in str(ended[0])
        monkeypatch.setattr(sender.RateLimiter, "acquire", real_acquire)
        result = send_issue(config, built, secrets=SECRETS, clock=now_utc)
    assert result.ledger == {"sent": EVERYONE}
    assert sorted(stored_ids(handler).values()) == [1] * EVERYONE
