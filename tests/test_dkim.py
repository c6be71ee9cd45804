"""DKIM signing: every message of a real send verifies with dkimpy against the published key,
a tampered header or body fails, the signature goes in front of compose's bytes unchanged, a
message signs only the listed headers it has, and without `dkim:` nothing changes.

Every expected header list is written out here, never read back from the code under test.
"""

from __future__ import annotations

import csv
import email
import mailbox
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from typing import TYPE_CHECKING

import dkim
import pytest

from newsletter.app.send import dry_run, send_issue, send_test
from newsletter.app.signing import message_signer
from newsletter.app.wiring import close_databases
from newsletter.config import BUILTIN_SUBSCRIBERS, Config, Secrets, resolve_secrets
from newsletter.config.dkim import parse_dkim_key
from newsletter.mail.compose import MessageFactory, message_id
from newsletter.mail.unsubscribe import make_token
from newsletter.models import Subscriber

from .dkimkeys import (
    DOMAIN,
    SELECTOR,
    SIGNING,
    UNSUBSCRIBE_SECRET,
    answering,
    config_in,
    pem,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from newsletter.app.built import BuiltIssue
    from newsletter.app.send import DryRun

NOW = datetime(2024, 7, 16, 21, 5, tzinfo=UTC)
AS_OF = "2024-07-16"
ISSUE_HEADERS = (
    "from:to:subject:date:message-id:list-id:list-unsubscribe:list-unsubscribe-post:reply-to:"
    "mime-version:content-type"
)


def tags(raw: bytes) -> dict[str, str]:
    """The DKIM-Signature's tags, whitespace removed."""
    value = str(email.message_from_bytes(raw, policy=policy.compat32)["DKIM-Signature"])
    return dict(tag.split("=", 1) for tag in re.sub(r"\s+", "", value).split(";") if tag)


def unsigned(raw: bytes) -> bytes:
    """`raw` without the DKIM-Signature in front (its first line and continuation lines)."""
    assert raw.startswith(b"DKIM-Signature: ")
    return re.sub(rb"\ADKIM-Signature: [^\r]*\r\n(?:[ \t][^\r]*\r\n)*", b"", raw)


def readers() -> list[tuple[str, str]]:
    with BUILTIN_SUBSCRIBERS.open(newline="") as handle:
        return [(row["email"], row["name"]) for row in csv.DictReader(handle)]


def received(config: Config) -> list[bytes]:
    """The messages in the capture server's Maildir, without the two trace lines it adds."""
    outbox = mailbox.Maildir(config.outbox_dir, create=False)
    messages = []
    for key in outbox.iterkeys():
        trace_from, trace_to, message = outbox.get_bytes(key).split(b"\r\n", 2)
        assert trace_from.startswith(b"Return-Path: <")
        assert trace_to.startswith(b"X-Envelope-To: ")
        messages.append(message)
    return messages


def composed(config: Config, built: BuiltIssue) -> list[bytes]:
    """The issue's messages as compose builds them for the sample readers, unsigned."""
    info = config.newsletter
    factory = MessageFactory(built.rendered, info, NOW)
    return [
        factory.build(
            Subscriber(address, name),
            message_id(info.list_id, AS_OF, address),
            make_token(UNSUBSCRIBE_SECRET.encode(), info.list_id, address),
        )
        for address, name in readers()
    ]


@dataclass(frozen=True)
class SignedSend:
    config: Config
    issue: list[bytes]
    test_copy: bytes
    planned: DryRun


@pytest.fixture(scope="module")
def signed_send(tmp_path_factory, build_day, dkim_key) -> SignedSend:
    """A dry run, the real send of the 2024-07-16 issue and a test copy, with DKIM on, through
    the built-in capture server (once for this module's tests)."""
    root = tmp_path_factory.mktemp("dkim-send")
    (root / "dkim.pem").write_bytes(pem(dkim_key))
    config = config_in(
        root,
        newsletter={"reply_to": "Editor <editor@example.com>"},
        dkim={"domain": DOMAIN, "selector": SELECTOR, "private_key_file": "dkim.pem"},
    )
    secrets = resolve_secrets(config, {"NEWSLETTER_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET})
    built = build_day(AS_OF)
    planned = dry_run(config, built, secrets=secrets, clock=lambda: NOW)
    send_issue(config, built, secrets=secrets, clock=lambda: NOW)
    issue = received(config)
    send_test(config, built, "editor@example.net", secrets=secrets, clock=lambda: NOW)
    [test_copy] = [message for message in received(config) if message not in issue]
    close_databases()
    return SignedSend(config, issue, test_copy, planned)


def test_every_message_of_a_real_send_verifies_against_the_published_key(signed_send, dkim_key):
    assert len(signed_send.issue) == len(readers())
    for raw in [*signed_send.issue, signed_send.test_copy]:
        assert dkim.verify(raw, dnsfunc=answering(dkim_key))
        signature = tags(raw)
        assert signature["h"] == ISSUE_HEADERS
        assert (signature["d"], signature["s"]) == (DOMAIN, SELECTOR)
        assert (signature["a"], signature["c"]) == ("rsa-sha256", "relaxed/relaxed")
        assert not re.search(rb"^\.", raw, re.MULTILINE)  # SMTP sends it without dot-stuffing
    assert b"Subject: [TEST] " in signed_send.test_copy


def test_signing_puts_one_header_in_front_of_the_bytes_compose_made(signed_send, build_day):
    """Nothing after signing folds or re-encodes a header: the rest is compose's bytes."""
    expected = composed(signed_send.config, build_day(AS_OF))
    assert sorted(unsigned(raw) for raw in signed_send.issue) == sorted(expected)
    assert signed_send.planned.messages == len(readers())
    assert signed_send.planned.size == sum(len(raw) for raw in signed_send.issue)


def _replace_header(name: bytes, value: bytes) -> Callable[[bytes], bytes]:
    pattern = re.compile(rb"(\r\n" + name + rb":)[^\r]*(\r\n[ \t][^\r]*)*")
    return lambda raw: pattern.sub(lambda found: found[1] + b" " + value, raw, count=1)


TAMPERING = [
    pytest.param(
        lambda raw: raw.replace(b"List-Unsubscribe-Post: ", b"List-Unsubscribe-Post:\r\n   "),
        True,
        id="refolded-by-a-relay",
    ),
    pytest.param(
        _replace_header(b"List-Unsubscribe-Post", b"List-Unsubscribe=Two-Click"),
        False,
        id="list-unsubscribe-post-changed",
    ),
    pytest.param(
        lambda raw: re.sub(rb"\r\nList-Unsubscribe-Post: [^\r]*", b"", raw),
        False,
        id="list-unsubscribe-post-removed",
    ),
    pytest.param(_replace_header(b"Subject", b"You won a prize"), False, id="subject-changed"),
    pytest.param(
        _replace_header(b"List-Unsubscribe", b"<https://evil.example.net/u/x>"),
        False,
        id="list-unsubscribe-changed",
    ),
    pytest.param(
        lambda raw: raw.replace(b"\r\n\r\n", b"\r\n\r\nInjected preamble\r\n", 1),
        False,
        id="body-changed",
    ),
]


@pytest.mark.parametrize(("tamper", "verifies"), TAMPERING)
def test_a_tampered_message_fails_verification(signed_send, dkim_key, tamper, verifies):
    raw = signed_send.issue[0]
    assert dkim.verify(raw, dnsfunc=answering(dkim_key))
    changed = tamper(raw)
    assert changed != raw
    assert dkim.verify(changed, dnsfunc=answering(dkim_key)) is verifies


MINIMAL = (
    b"From: Rotation Digest <digest@example.com>\r\n"
    b"To: reader@example.org\r\n"
    b"Subject: Welcome\r\n"
    b"Date: Tue, 16 Jul 2024 21:05:00 +0000\r\n"
    b"Message-ID: <welcome.1@rotation-digest.example.com>\r\n"
)
BODY = b'MIME-Version: 1.0\r\nContent-Type: text/plain; charset="utf-8"\r\n\r\nHello.\r\n'


@pytest.mark.parametrize(
    ("extra", "signed"),
    [
        pytest.param(b"", "from:to:subject:date:message-id:mime-version:content-type", id="bare"),
        pytest.param(
            b"List-Unsubscribe: <https://digest.example.com/u/t>\r\nX-Mailer: test\r\n",
            "from:to:subject:date:message-id:list-unsubscribe:mime-version:content-type",
            id="no-list-unsubscribe-post",
        ),
        pytest.param(
            b"reply-to: editor@example.com\r\nList-Id: Rotation Digest <rd.example.com>\r\n",
            "from:to:subject:date:message-id:list-id:reply-to:mime-version:content-type",
            id="lower-case-name",
        ),
    ],
)
def test_a_message_signs_only_the_listed_headers_it_has(dkim_key, extra, signed):
    config = Config.model_validate({"dkim": SIGNING})
    secrets = Secrets(dkim_key=parse_dkim_key(pem(dkim_key), "the test key"))
    raw = message_signer(config, secrets)(MINIMAL + extra + BODY)
    assert unsigned(raw) == MINIMAL + extra + BODY
    assert tags(raw)["h"] == signed
    assert dkim.verify(raw, dnsfunc=answering(dkim_key))


def test_without_dkim_a_send_leaves_every_message_as_composed(tmp_path, build_day):
    config = config_in(tmp_path)
    secrets = resolve_secrets(config, {"NEWSLETTER_UNSUBSCRIBE_SECRET": UNSUBSCRIBE_SECRET})
    assert secrets.dkim_key is None
    built = build_day(AS_OF)
    send_issue(config, built, secrets=secrets, clock=lambda: NOW)
    close_databases()
    assert sorted(received(config)) == sorted(composed(config, built))
    assert message_signer(config, secrets)(MINIMAL + BODY) == MINIMAL + BODY
