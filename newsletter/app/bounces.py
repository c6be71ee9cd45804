"""Read the bounce mailbox: bounces, complaints and mail to the unsubscribe address, each
message once.

Only a recipient's permanent refusal touches a subscriber: a hard bounce marks them bounced,
soft bounces do only at `bounces.soft_limit` within `bounces.soft_days`, a complaint marks them
complained, a mail to the unsubscribe address unsubscribes its From address if that is a
subscriber. A bounce or complaint counts only through a genuine VERP token naming a message
the ledger sent, and a bounce only for that message's address; anything else (a message that
does not parse, no or a forged token, another address, a delay notice, a policy refusal) is
recorded with the reason and changes nobody. Nothing can subscribe anyone or read anything.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING

from newsletter.app.keys import unsubscribe_key
from newsletter.app.wiring import database, log_stage
from newsletter.config import require_imap_password
from newsletter.db import bounces as book
from newsletter.delivery.inbox import open_inbox
from newsletter.errors import ConfigError, SubscriberError
from newsletter.mail.addresses import normalise_address
from newsletter.mail.bounces import (
    Bounce,
    Complaint,
    Inbound,
    MailtoUnsubscribe,
    Severity,
    Unrecognised,
    classify,
)
from newsletter.mail.reports import one_line
from newsletter.mail.verp import verify_bounce_token
from newsletter.models import InboundKind, SubscriberStatus

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from sqlalchemy.engine import Engine

    from newsletter.config import Config, Secrets
    from newsletter.delivery.inbox import InboundMessage

logger = logging.getLogger("newsletter.schedule")
"""The schedule's log, whose run reads the mailbox before it sends."""

Judged = tuple[InboundKind, str, book.BounceEvent | None]
"""What a message is, why, and the event it records (None: nothing about anyone)."""


@dataclass
class MailboxReport:
    """What one reading of the mailbox did."""

    mailbox: str
    earlier: int = 0
    """Messages there that were read before."""
    counts: Counter[InboundKind] = field(default_factory=Counter)
    changes: list[tuple[str, SubscriberStatus, str]] = field(default_factory=list)
    """(address, new status, why) of each subscriber this reading changed."""
    soft: list[tuple[str, int]] = field(default_factory=list)
    """(address, soft bounces counting now) of each soft bounce below the limit."""
    ignored: list[tuple[str, str]] = field(default_factory=list)
    """(message key, why nothing was done) of each message not acted on."""

    @property
    def new(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """One line: what was read and what it did."""
        kinds = ", ".join(f"{self.counts[k]} {k}" for k in InboundKind if self.counts.get(k))
        return (
            f"{self.mailbox}: {self.new} new message(s) ({self.earlier} read before)"
            f"{': ' + kinds if kinds else ''}; {len(self.changes)} subscriber(s) changed"
        )


@dataclass(frozen=True, slots=True)
class _Context:
    config: Config
    engine: Engine
    key: bytes


def process_mailbox(
    config: Config,
    *,
    secrets: Secrets,
    clock: Callable[[], datetime],
    on_start: Callable[[int], None] = lambda total: None,
    on_progress: Callable[[int], None] = lambda done: None,
) -> MailboxReport:
    """Read every message of the bounce mailbox not read before, and act on each once."""
    section = config.bounces
    if not section.enabled:
        raise ConfigError(
            f"{config.source or 'config'}: no bounce mailbox is set up: set bounces.maildir or "
            "bounces.imap_host (README: Bounces and complaints)"
        )
    password = require_imap_password(config, secrets)
    context = _Context(config, database(config), unsubscribe_key(config, secrets, warn=False))
    with open_inbox(section, password) as inbox:
        keys = inbox.keys()
        todo = book.unread(context.engine, inbox.name, keys)
        report = MailboxReport(inbox.name, earlier=len(keys) - len(todo))
        on_start(len(todo))
        for key in todo:
            message = inbox.read(key)
            if message is not None:
                _process(context, inbox.name, message, clock(), report)
            on_progress(1)
    return report


def read_before_send(config: Config, *, secrets: Secrets, clock: Callable[[], datetime]) -> None:
    """Read the mailbox before a scheduled run sends, so that nobody who bounced, complained or
    unsubscribed by mail gets the issue; a mailbox that fails is one log line, and the send
    goes on."""
    started = time.perf_counter()
    try:
        report = process_mailbox(config, secrets=secrets, clock=clock)
    except Exception as err:  # whatever the mailbox does, the issue still goes out
        logger.error("mailbox not read (%s); sending anyway", err)
        logger.debug("reading the mailbox failed", exc_info=True)
        return
    log_stage("mailbox", started, report.summary())


def _process(
    context: _Context, mailbox: str, message: InboundMessage, now: datetime, report: MailboxReport
) -> None:
    arrived = (message.received_at or now).astimezone(UTC)
    digest = hashlib.sha256(message.data).hexdigest()
    read = book.ReadMessage(mailbox, message.key, digest, arrived)
    if book.read_before(context.engine, digest):
        outcome, detail, event = InboundKind.DUPLICATE, "the same bytes were read before", None
    else:
        info = context.config.newsletter
        found = classify(
            message.data,
            bounce_address=info.bounce_address,
            unsubscribe_mailto=info.unsubscribe_mailto,
        )
        outcome, detail, event = _judge(context, found, arrived)
    section = context.config.bounces
    rule = book.SoftRule(section.soft_limit, section.soft_days)
    recorded = book.record(context.engine, read, outcome, detail, now, event=event, rule=rule)
    if recorded is None:  # another reader of this mailbox recorded it first
        return
    report.counts[outcome] += 1
    if outcome is InboundKind.IGNORED:
        report.ignored.append((message.key, detail))
    if event is None:
        return
    if recorded.changed is not None:
        report.changes.append((event.email, recorded.changed, recorded.by))
    elif outcome is InboundKind.SOFT:
        report.soft.append((event.email, recorded.soft_count))


def _judge(context: _Context, found: Inbound, at: datetime) -> Judged:
    if isinstance(found, Unrecognised):
        return InboundKind.IGNORED, found.reason, None
    if isinstance(found, MailtoUnsubscribe):
        return _unsubscribe(context, found, at)
    sent = _sent(context, found.token)
    if isinstance(sent, str):
        return InboundKind.IGNORED, sent, None
    if isinstance(found, Complaint):
        why = f"a complaint about issue {sent.as_of} ({found.detail})"
        event = book.BounceEvent(
            sent.subscriber_id,
            sent.email,
            sent.issue_id,
            InboundKind.COMPLAINT,
            at,
            why,
            SubscriberStatus.COMPLAINED,
            why,
        )
        return InboundKind.COMPLAINT, why, event
    return _bounce(found, sent, at)


def _sent(context: _Context, token: str | None) -> book.SentMessage | str:
    """The message a bounce's token names, or why there is none."""
    if token is None:
        return "no VERP token in the address it came to (not a reply to a list message)"
    ids = verify_bounce_token(context.key, context.config.newsletter.list_id, token)
    if ids is None:
        return f"a forged or unknown VERP token ({one_line(token, 40)})"
    sent = book.sent_message(context.engine, *ids)
    if sent is None:
        return f"its VERP token names issue id {ids[0]} to subscriber id {ids[1]}, never sent"
    return sent


def _bounce(found: Bounce, sent: book.SentMessage, at: datetime) -> Judged:
    failure = found.failure_for(sent.email)
    if failure is None:
        named = ", ".join(r for failed in found.failures for r in failed.recipients) or "nobody"
        return (
            InboundKind.IGNORED,
            f"a bounce for {named}, not {sent.email} whose message it came back from",
            None,
        )
    if failure.severity is Severity.POLICY:
        return (
            InboundKind.IGNORED,
            f"a policy refusal of {sent.email} (the sender's problem, as at SMTP time): "
            f"{failure.detail}",
            None,
        )
    kind = InboundKind.HARD if failure.severity is Severity.HARD else InboundKind.SOFT
    why = f"a {kind} bounce ({failure.status or 'no code'}) of issue {sent.as_of}"
    detail = f"{why}, {found.report}: {failure.detail}"
    event = book.BounceEvent(
        sent.subscriber_id,
        sent.email,
        sent.issue_id,
        kind,
        at,
        detail,
        SubscriberStatus.BOUNCED,
        why,
    )
    return kind, detail, event


def _unsubscribe(context: _Context, found: MailtoUnsubscribe, at: datetime) -> Judged:
    mailto = context.config.newsletter.unsubscribe_mailto
    try:
        address = normalise_address(found.address)
    except SubscriberError:
        return InboundKind.IGNORED, f"a mail to {mailto} from an invalid address", None
    subscriber = book.find_subscriber(context.engine, address)
    if subscriber is None:
        return (
            InboundKind.IGNORED,
            f"a mail to {mailto} from {address}, who is not a subscriber: nothing changed",
            None,
        )
    why = f"their mail to {mailto}"
    event = book.BounceEvent(
        subscriber[0],
        address,
        None,
        InboundKind.UNSUBSCRIBE,
        at,
        f"{why} (from {address})",
        SubscriberStatus.UNSUBSCRIBED,
        why,
    )
    return InboundKind.UNSUBSCRIBE, f"{why} (from {address})", event
