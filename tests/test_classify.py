"""SMTP reply classification (delivery/smtp.py) and what the sender makes of each verdict.

Every expected value comes from the rules in smtp.py's docstring and the RFCs (RFC 5321 reply
codes, RFC 3463 enhanced status codes), not from running the code. The verdicts follow the
table of stage and cause in smtp.py's docstring.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from newsletter.config import DeliverySection, SmtpSection
from newsletter.delivery.sender import Sender
from newsletter.delivery.smtp import SmtpFailure, Verdict, classify
from newsletter.models import Delivery, LedgerStatus

RETRY, PERMANENT, BOUNCE, FATAL = Verdict.RETRY, Verdict.PERMANENT, Verdict.BOUNCE, Verdict.FATAL
UNCERTAIN = Verdict.UNCERTAIN


def row(stage, code, text, verdict, why):
    return pytest.param(stage, code, text, verdict, id=why)


CLASSIFY = [
    # 4yz is transient (RFC 5321 4.2.1); 421 may answer any command, the greeting included.
    row("connect", 421, "4.3.2 Service not available", RETRY, "connect-421-service-closing"),
    row("connect", 421, "4.7.0 Too many connections", RETRY, "connect-421-4.7.0-class-4-not-5.7"),
    row("connect", 454, "4.7.0 TLS not available", RETRY, "connect-454-starttls-refused-for-now"),
    row("rcpt", 421, "4.4.2 Closing connection", RETRY, "rcpt-421-service-closing"),
    row("rcpt", 450, "4.2.1 Mailbox busy", RETRY, "rcpt-450-mailbox-busy"),
    row("rcpt", 451, "4.3.0 Local error", RETRY, "rcpt-451-local-error"),
    row("rcpt", 452, "4.5.3 Too many recipients", RETRY, "rcpt-452-too-many-recipients"),
    row("rcpt", 452, "4.2.2 Mailbox full", RETRY, "rcpt-452-4.2.2-mailbox-full-transient"),
    row("mail", 451, "4.1.8 Sender domain does not resolve", RETRY, "mail-451-transient"),
    row("data", 421, "4.4.2 Timeout", RETRY, "data-421-service-closing"),
    row("data", 450, "4.7.1 Greylisted", RETRY, "data-450-greylisted-4.7-is-transient"),
    row("data", 451, "4.3.0 Queue write error", RETRY, "data-451-local-error"),
    row("data", 452, "4.3.1 Insufficient system storage", RETRY, "data-452-storage"),
    row("auth", 454, "4.7.0 Temporary authentication failure", RETRY, "auth-454-rfc4954-temp"),
    # RFC 5321 4.5.3.1.10: a 552 to RCPT means "too many recipients" and is treated as 452.
    row("rcpt", 552, "5.2.2 Mailbox full", RETRY, "rcpt-552-5.2.2-retry-rfc5321-4.5.3.1.10"),
    row("rcpt", 552, "5.5.3 Too many recipients", RETRY, "rcpt-552-5.5.3-retry-rfc5321-4.5.3.1.10"),
    # ... but only at RCPT: elsewhere 552 is a plain 5yz about the message (its size): stop.
    row("data", 552, "5.3.4 Message too big", FATAL, "data-552-5.3.4-message-too-big"),
    row("mail", 552, "5.3.4 Size exceeds limit", FATAL, "mail-552-only-rcpt-552-is-retried"),
    # RFC 3463 X.1.x: addressing status; at RCPT it is the subscriber's mailbox -> bounce.
    row("rcpt", 550, "5.1.1 User unknown", BOUNCE, "rcpt-550-5.1.1-bad-destination-mailbox"),
    row("rcpt", 550, "5.1.0 Address rejected", BOUNCE, "rcpt-550-5.1.0-other-address-status"),
    row("rcpt", 553, "5.1.3 Bad address syntax", BOUNCE, "rcpt-553-5.1.3-bad-mailbox-syntax"),
    row("rcpt", 550, "5.1.10 Null MX", BOUNCE, "rcpt-550-5.1.10-rfc7505-3-digit-detail"),
    row("rcpt", 550, "   5.1.1 User unknown", BOUNCE, "rcpt-550-5.1.1-leading-spaces"),
    # A 5.1.x after DATA is still the recipient's mailbox (a server that checks late).
    row("data", 550, "5.1.1 User unknown", BOUNCE, "data-550-5.1.1-late-recipient-check"),
    # At MAIL FROM a 5yz is about our sender (RFC 3463 X.1.7, X.1.8), never a subscriber's.
    row("mail", 550, "5.1.8 Bad sender's system address", FATAL, "mail-550-5.1.8-our-sender"),
    row("mail", 553, "5.1.7 Bad sender's mailbox syntax", FATAL, "mail-553-5.1.7-our-sender"),
    row("mail", 550, "Sender rejected", FATAL, "mail-550-no-enhanced-our-sender"),
    # Other 5yz at RCPT: this recipient refuses this message for good; no bounce without 5.1.x.
    row("rcpt", 550, "5.2.1 Mailbox disabled", PERMANENT, "rcpt-550-5.2.1-mailbox-disabled"),
    row("rcpt", 550, "Mailbox unavailable", PERMANENT, "rcpt-550-no-enhanced"),
    # Other 5yz after DATA: the message itself is refused (the recipient was accepted at RCPT),
    # so every recipient would get the same answer: stop the run.
    row("data", 550, "5.2.1 Mailbox disabled", FATAL, "data-550-5.2.1-message-level"),
    row("data", 554, "5.6.0 Content rejected", FATAL, "data-554-5.6.0-media-error"),
    row("data", 500, "5.5.2 Line too long", FATAL, "data-500-line-too-long"),
    row("data", 500, "Syntax error, command unrecognized", FATAL, "data-500-syntax-error"),
    row("data", 554, "Transaction failed", FATAL, "data-554-no-enhanced-not-greeting"),
    # Stop the run: AUTH failures, 5.7.x policy blocks, 554 at the greeting, TLS that fails.
    row("auth", 530, "5.7.0 Authentication required", FATAL, "auth-530-rfc4954-auth-required"),
    row("auth", 535, "5.7.8 Credentials invalid", FATAL, "auth-535-rfc4954-bad-credentials"),
    row("auth", 535, "Authentication failed", FATAL, "auth-535-no-enhanced-code"),
    row("auth", 504, "5.5.4 Unrecognized authentication type", FATAL, "auth-504-any-5yz"),
    row("auth", 534, "5.7.9 Mechanism too weak", FATAL, "auth-534-rfc4954"),
    row("rcpt", 550, "5.7.1 Relaying denied", FATAL, "rcpt-550-5.7.1-policy"),
    row("mail", 553, "5.7.1 Sender not owned by user", FATAL, "mail-553-5.7.1-policy"),
    row("mail", 550, "  5.7.26 DMARC failed", FATAL, "mail-550-5.7.26-policy-leading-spaces"),
    row("data", 550, "5.7.1 Rejected as spam", FATAL, "data-550-5.7.1-policy"),
    row("connect", 554, "No SMTP service here", FATAL, "connect-554-greeting-rfc5321-3.1"),
    row("connect", 521, "5.3.2 Does not accept mail", FATAL, "connect-521-rfc7504"),
    row("tls", None, "TLS failed: CERTIFICATE_VERIFY_FAILED", FATAL, "tls-none-cert-unverifiable"),
    # No reply at all: timeouts and dropped connections are retried; after the whole message
    # went out, nobody knows whether it was stored: uncertain.
    row("data", None, "connection lost: gone", RETRY, "data-none-dropped-connection"),
    row("data", None, "no answer: timed out", RETRY, "data-none-timeout"),
    row("connect", None, "cannot connect: refused", RETRY, "connect-none-retry-verdict"),
    # A 4yz whose text carries a 5.x.x code is inconsistent (RFC 3463: the class digits agree);
    # the basic code decides, and a 4yz is transient.
    row("rcpt", 450, "5.1.1 User unknown", RETRY, "rcpt-450-with-5.1.1-basic-code-wins"),
    row("rcpt", 451, "5.7.1 Policy", RETRY, "rcpt-451-with-5.7.1-basic-code-wins"),
]


@pytest.mark.parametrize(("stage", "code", "text", "expected"), CLASSIFY)
def test_classify(stage, code, text, expected):
    assert classify(SmtpFailure(stage, code, text)) is expected


def test_a_lost_reply_after_the_whole_message_is_uncertain():
    lost = SmtpFailure("data", None, "no reply after the whole message was sent", uncertain=True)
    assert classify(lost) is UNCERTAIN


NOW = datetime(2024, 7, 16, 21, 0, tzinfo=UTC)
BACKOFF_S = 30.0
BUSY = SmtpFailure("rcpt", 451, "4.3.0 Local error")
TOO_MANY = SmtpFailure("rcpt", 552, "5.5.3 Too many recipients")
CLOSING = SmtpFailure("connect", 421, "4.3.2 Service not available")
TIMEOUT = SmtpFailure("data", None, "no answer: timed out")
UNKNOWN = SmtpFailure("rcpt", 550, "5.1.1 User unknown")
REJECTED = SmtpFailure("rcpt", 550, "5.2.1 Mailbox disabled")
LOST = SmtpFailure("data", None, "no reply after the whole message was sent", uncertain=True)
BAD_LOGIN = SmtpFailure("auth", 535, "5.7.8 Credentials invalid")
BAD_CERT = SmtpFailure("tls", None, "TLS failed: CERTIFICATE_VERIFY_FAILED")
UNREACHABLE = SmtpFailure("connect", None, "cannot connect: refused")
PENDING, DEFERRED = LedgerStatus.PENDING, LedgerStatus.DEFERRED
BOUNCED, FAILED = LedgerStatus.BOUNCED, LedgerStatus.FAILED


def later(seconds):
    return NOW + timedelta(seconds=seconds)


def case(failure, attempts, max_attempts, reached, status, retry_at, bounce, stopped, why):
    return pytest.param(
        failure, attempts, max_attempts, reached, status, retry_at, bounce, stopped, id=why
    )


# failure, attempts, max_attempts, reached -> status, retry_at, bounce_subscriber, run stopped.
# With a 30 s backoff, retry_at is NOW + 30 s, 60 s, 120 s after attempts 1, 2, 3.
OUTCOMES = [
    case(BUSY, 1, 3, False, PENDING, later(30), False, False, "retry-1st-30s"),
    case(BUSY, 2, 3, False, PENDING, later(60), False, False, "retry-2nd-60s"),
    case(BUSY, 3, 5, False, PENDING, later(120), False, False, "retry-3rd-120s"),
    case(BUSY, 3, 3, False, DEFERRED, None, False, False, "retry-at-max-deferred"),
    case(BUSY, 4, 3, False, DEFERRED, None, False, False, "retry-past-max-deferred"),
    case(BUSY, 1, 1, False, DEFERRED, None, False, False, "retry-max-1-deferred"),
    case(TOO_MANY, 2, 5, False, PENDING, later(60), False, False, "rcpt-552-retried"),
    case(CLOSING, 1, 3, False, PENDING, later(30), False, False, "connect-421-is-a-reply"),
    case(TIMEOUT, 1, 3, False, PENDING, later(30), False, False, "data-none-is-not-connect"),
    case(UNKNOWN, 1, 3, False, BOUNCED, None, True, False, "bounce"),
    case(LOST, 1, 3, True, PENDING, later(30), False, False, "uncertain-retried-once"),
    case(REJECTED, 1, 3, False, FAILED, None, False, False, "permanent-failed"),
    case(BAD_LOGIN, 1, 3, True, PENDING, None, False, True, "fatal-auth-stops"),
    case(BAD_CERT, 1, 3, True, PENDING, None, False, True, "fatal-tls-stops"),
    # Unreachable before anything went through in this run: stop, keep the message pending.
    case(UNREACHABLE, 1, 3, False, PENDING, None, False, True, "unreachable-stops"),
    case(UNREACHABLE, 3, 3, False, PENDING, None, False, True, "unreachable-at-max-stops"),
    # The same failure once a message went through is an ordinary retry.
    case(UNREACHABLE, 2, 3, True, PENDING, later(60), False, False, "after-reached-retry"),
    case(UNREACHABLE, 3, 3, True, DEFERRED, None, False, False, "after-reached-deferred"),
]


@pytest.mark.parametrize(
    ("failure", "attempts", "max_attempts", "reached", "status", "retry_at", "bounce", "stopped"),
    OUTCOMES,
)
def test_outcome(failure, attempts, max_attempts, reached, status, retry_at, bounce, stopped):
    sender = Sender(
        SmtpSection(host="127.0.0.1", port=2525),
        None,
        envelope_sender=lambda job: "digest@example.com",
        build=lambda job: b"",
        policy=DeliverySection(max_attempts=max_attempts, retry_backoff_s=BACKOFF_S),
        clock=lambda: NOW,
    )
    if reached:
        sender._reached.set()
    job = Delivery(7, "ada.lovelace@example.com", "Ada", "<7@rotation-digest>", attempts)
    outcome = sender._outcome(job, failure)
    assert (outcome.subscriber_id, outcome.status) == (7, status)
    assert outcome.retry_at == retry_at
    assert outcome.bounce_subscriber is bounce
    assert sender._stop.is_set() is stopped
