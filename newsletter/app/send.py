"""Send a built issue: to the whole list (exactly once each), as one test copy, or as a dry run.

Safe to run again at any time: the ledger makes a second run send only what is missing.
"""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from email.utils import make_msgid
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from newsletter.app.archive import archive_issue
from newsletter.app.audience import sync_subscribers
from newsletter.app.keys import unsubscribe_key
from newsletter.app.signing import message_signer
from newsletter.app.wiring import database
from newsletter.db import ledger as send_ledger
from newsletter.db import runs as send_runs
from newsletter.delivery.capture import CaptureServer
from newsletter.delivery.sender import Sender
from newsletter.delivery.smtp import SmtpConnection, SmtpFailure
from newsletter.errors import DeliveryError, IssueChangedError, LintError
from newsletter.mail.addresses import normalise_address
from newsletter.mail.compose import MessageFactory, message_id
from newsletter.mail.unsubscribe import make_token
from newsletter.mail.verp import make_bounce_token, verp_address
from newsletter.models import (
    UNFINISHED,
    LedgerStatus,
    Subscriber,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import date, datetime
    from pathlib import Path

    from sqlalchemy.engine import Connection, Engine

    from newsletter.app.built import BuiltIssue
    from newsletter.config import Config, NewsletterSection, Secrets, SmtpSection
    from newsletter.models import Delivery, DeliveryReport, Outcome

logger = logging.getLogger(__name__)


T = TypeVar("T")


@dataclass
class StoreLedger:
    """The delivery.sender.Ledger of one issue and run, backed by the database.

    The sender's threads take turns at writing: waiting on a lock costs microseconds, while
    SQLite's own busy handler sleeps for milliseconds when writers collide. Claims and results,
    a transaction or more a message, go over one connection kept for the run (`close` ends
    it): a checkout and reset from the pool each time cost more than the write. A write that
    fails (a lost link, a lock held too long) drops it; the next write takes a new one.
    """

    engine: Engine
    issue_id: int
    run_id: int
    clock: Callable[[], datetime]
    _writing: threading.Lock = field(default_factory=threading.Lock)
    _writer: Connection | None = None
    _closed: bool = False

    def _write(self, work: Callable[[Engine | Connection], T]) -> T:
        """Run `work` on the kept connection (after `close`, on the engine's pool). A failure
        drops that connection, whatever state it left it in: the next write starts afresh."""
        with self._writing:
            if self._closed:
                return work(self.engine)
            if self._writer is None:
                self._writer = self.engine.connect()
            try:
                return work(self._writer)
            except BaseException:
                self._drop()
                raise

    def _drop(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except SQLAlchemyError:
                self._writer.invalidate()
            self._writer = None

    def close(self) -> None:
        """Give the kept connection back; it never hides the error a send may be raising."""
        with self._writing:
            self._closed = True
            self._drop()

    def claim(self, limit: int) -> list[Delivery]:
        return self._write(
            lambda bind: send_ledger.claim(bind, self.issue_id, self.run_id, limit, self.clock())
        )

    def record(self, outcomes: Sequence[Outcome]) -> None:
        self._write(lambda bind: send_ledger.record(bind, self.issue_id, outcomes, self.clock()))

    def next_due(self) -> datetime | None:
        return send_ledger.next_due(self.engine, self.issue_id)

    def heartbeat(self) -> None:
        send_runs.heartbeat(self.engine, self.run_id, self.clock())

    def take_over(self) -> tuple[int, int]:
        with self._writing:
            return send_runs.take_over(
                self.engine, send_runs.issue_queue(self.issue_id), self.run_id, self.clock()
            )

    def reopen(self, subscriber_ids: Sequence[int]) -> None:
        with self._writing:
            send_ledger.reopen(self.engine, self.issue_id, subscriber_ids, self.clock())


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a send did, the issue's ledger afterwards, and where the messages went."""

    report: DeliveryReport
    ledger: dict[LedgerStatus, int]
    destination: str
    row_errors: list[str]
    archive: Path
    """Where the issue as sent is kept (`newsletter serve` publishes it)."""

    @property
    def complete(self) -> bool:
        """True when no message of the issue is left pending, deferred or refused."""
        refused = {LedgerStatus.BOUNCED, LedgerStatus.FAILED}
        return not (set(self.ledger) & (UNFINISHED | refused))

    @property
    def retry_left(self) -> bool:
        """True while messages wait for another try (refused ones never get one)."""
        return bool(set(self.ledger) & UNFINISHED)


def latest_unfinished(config: Config) -> date | None:
    """The as-of of the newest issue whose send is unfinished, for `send --resume`."""
    return send_ledger.latest_unfinished_issue(database(config))


def intend_send(config: Config, as_of: date, now: datetime) -> None:
    """Record that a send of this issue began (before its build), for `send --resume`."""
    send_ledger.note_send_intent(database(config), as_of, now)


def cancel_send(config: Config, as_of: date, now: datetime) -> int:
    """Mail nobody else the issue for `as_of`: what is still to be tried is skipped (and no
    resume picks it up). Returns how many messages were cancelled."""
    return send_ledger.cancel_rest(database(config), as_of, now)


def send_unfinished(config: Config, as_of: date) -> bool:
    """Whether messages of the issue for `as_of` still wait to be sent."""
    return send_ledger.unfinished(database(config), as_of)


def _refuse_lint_errors(built: BuiltIssue) -> None:
    if built.lint_errors:
        raise LintError(
            f"issue {built.stats.as_of.isoformat()} has {len(built.lint_errors)} lint error(s), "
            f"the first: {built.lint_errors[0].text}; run `newsletter lint` to see all, and fix "
            "them before sending"
        )


def open_destination(config: Config, stack: ExitStack) -> tuple[SmtpSection, str]:
    """Where to send, and how to name it; the built-in capture server runs until `stack` closes."""
    if config.smtp.is_builtin:
        server = stack.enter_context(CaptureServer(config.outbox_dir))
        where = f"built-in capture server, Maildir {config.outbox_dir}"
        return server.settings(config.smtp.timeout_s), where
    return config.smtp, f"SMTP server {config.smtp.host}:{config.smtp.port}"


def send_issue(
    config: Config,
    built: BuiltIssue,
    *,
    secrets: Secrets,
    clock: Callable[[], datetime],
    on_start: Callable[[int], None] = lambda total: None,
    on_progress: Callable[[int], None] = lambda done: None,
    corrected: bool = False,
) -> SendResult:
    """Deliver the built issue to every active subscriber who has not received it yet; with
    `corrected`, also when it differs from what earlier readers got (a corrected edition)."""
    _refuse_lint_errors(built)
    engine = database(config)
    now = clock()
    row_errors = sync_subscribers(config, now)
    info = config.newsletter
    as_of = built.stats.as_of.isoformat()
    issue_id = _record_issue(config, built, now, corrected=corrected)
    archive = archive_issue(config, built, now)
    run_id = send_runs.start_run(engine, send_runs.issue_queue(issue_id), now)
    try:
        send_ledger.enqueue_audience(
            engine, issue_id, lambda email: message_id(info.list_id, as_of, email), now
        )
        counts = send_ledger.ledger_counts(engine, issue_id)
        on_start(counts.get(LedgerStatus.PENDING, 0) + counts.get(LedgerStatus.CLAIMED, 0))
        ledger = StoreLedger(engine, issue_id, run_id, clock)
        try:
            delivered, destination = _deliver(config, built, secrets, ledger, on_progress)
        finally:
            ledger.close()
    finally:
        _finish_run(engine, run_id, clock())
    counts = send_ledger.ledger_counts(engine, issue_id)
    delivered.skipped = (
        counts.get(LedgerStatus.SENT, 0) - delivered.sent + counts.get(LedgerStatus.SKIPPED, 0)
    )
    logger.info(
        "Sent issue %s: %d sent, %d retried, %d bounced, %d failed, %d deferred, %d skipped",
        as_of,
        delivered.sent,
        delivered.retried,
        delivered.bounced,
        delivered.failed,
        delivered.deferred,
        delivered.skipped,
    )
    return SendResult(delivered, counts, destination, row_errors, archive)


def _record_issue(config: Config, built: BuiltIssue, now: datetime, *, corrected: bool) -> int:
    """The issue's ledger id; a change after readers got it is refused with the ways on."""
    as_of = built.stats.as_of.isoformat()
    try:
        return send_ledger.record_issue(
            database(config),
            built.stats.as_of,
            built.rendered.subject,
            built.content_sha256,
            now,
            corrected=corrected,
        )
    except IssueChangedError as err:
        raise IssueChangedError(
            f"{err}, and a send never mails the rest different content unasked: restore what "
            f"they got (it is in {config.archive_dir / as_of}) and send again; or `newsletter "
            f"send --as-of {as_of} --corrected` to mail this content only to those who do not "
            f"have it; or `newsletter send --as-of {as_of} --cancel` to mail nobody else"
        ) from None


def _finish_run(engine: Engine, run_id: int, now: datetime) -> None:
    """Close the run; if the database cannot take even that (a full disk), the claims it holds
    are released by the next run, which sees this one dead, so only say why and go on."""
    try:
        send_runs.finish_run(engine, run_id, now)
    except (SQLAlchemyError, OSError) as err:
        logger.warning(
            "could not mark send run %d finished (%s); the next run releases it", run_id, err
        )


def _envelope_sender(
    info: NewsletterSection, key: bytes, issue_id: int
) -> Callable[[Delivery], str]:
    """Each message's MAIL FROM: with newsletter.bounce_address its own VERP address, whose
    signed token names the issue and the subscriber; else the one envelope sender."""
    bounce_address = info.bounce_address
    if bounce_address is None:
        sender = info.envelope_sender  # parsed once: the From: header is the same for everyone
        return lambda job: sender
    return lambda job: verp_address(
        bounce_address, make_bounce_token(key, info.list_id, issue_id, job.subscriber_id)
    )


def _deliver(
    config: Config,
    built: BuiltIssue,
    secrets: Secrets,
    ledger: StoreLedger,
    on_progress: Callable[[int], None],
) -> tuple[DeliveryReport, str]:
    """Send every claimable message of the issue over the configured destination."""
    info = config.newsletter
    factory = MessageFactory(built.rendered, info, ledger.clock())
    key = unsubscribe_key(config, secrets)
    sign = message_signer(config, secrets)

    def build(job: Delivery) -> bytes:
        token = make_token(key, info.list_id, job.email)
        return sign(factory.build(Subscriber(job.email, job.name), job.message_id, token))

    with ExitStack() as stack:
        settings, destination = open_destination(config, stack)
        sender = Sender(
            settings,
            secrets.smtp_password,
            envelope_sender=_envelope_sender(info, key, ledger.issue_id),
            build=build,
            policy=config.delivery,
            clock=ledger.clock,
        )
        return sender.run(ledger, on_progress), destination


def send_test(
    config: Config,
    built: BuiltIssue,
    address: str,
    *,
    secrets: Secrets,
    clock: Callable[[], datetime],
) -> str:
    """Send one copy marked [TEST] to `address`; it is never recorded as sent. Returns where."""
    recipient = normalise_address(address)
    info = config.newsletter
    factory = MessageFactory(built.rendered, info, clock(), test=True)
    token = make_token(unsubscribe_key(config, secrets), info.list_id, recipient)
    message = factory.build(Subscriber(recipient, ""), make_msgid(domain=info.list_id), token)
    data = message_signer(config, secrets)(message)
    with ExitStack() as stack:
        settings, destination = open_destination(config, stack)
        try:
            with SmtpConnection(settings, secrets.smtp_password) as connection:
                connection.send(info.envelope_sender, recipient, data)
        except SmtpFailure as failure:
            raise DeliveryError(f"the test copy to {recipient} was refused: {failure}") from failure
    return destination


@dataclass(frozen=True, slots=True)
class DryRun:
    """What a send would do now: the messages it would compose, their size, and the active
    readers it would skip because their message of this issue is done already."""

    messages: int
    size: int
    skipped: int


def dry_run(
    config: Config, built: BuiltIssue, *, secrets: Secrets, clock: Callable[[], datetime]
) -> DryRun:
    """Compose (and sign) every message a send would deliver now, without sending."""
    sync_subscribers(config, clock())
    info = config.newsletter
    factory = MessageFactory(built.rendered, info, clock())
    key = unsubscribe_key(config, secrets)
    sign = message_signer(config, secrets)
    as_of = built.stats.as_of.isoformat()
    count = size = skipped = 0
    for email, name, done in send_ledger.active_readers(database(config), built.stats.as_of):
        if done:
            skipped += 1
            continue
        data = sign(
            factory.build(
                Subscriber(email, name),
                message_id(info.list_id, as_of, email),
                make_token(key, info.list_id, email),
            )
        )
        count += 1
        size += len(data)
    return DryRun(count, size, skipped)
