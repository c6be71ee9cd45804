"""Send the notices (confirmation and welcome mails) through the issue's own sender and rules.

Each drain is a send run of its own: notices are claimed before they go and recorded as the
server answers, so a crash never sends one twice beyond the lost-reply window an issue has
(README: Delivery), and a refused one is recorded with the server's reply. `NoticeWorker`
drains in the background of `newsletter serve`, at once after a signup or confirmation and
every few seconds otherwise; with several serve processes their claims never overlap.
"""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from newsletter.app.keys import unsubscribe_key
from newsletter.app.send import open_destination
from newsletter.app.signing import message_signer
from newsletter.app.signup import confirm_link, expire_signups
from newsletter.app.wiring import database
from newsletter.db import notices as notice_store
from newsletter.db import runs as send_runs
from newsletter.delivery.sender import Sender
from newsletter.errors import NewsletterError
from newsletter.issue.render import make_environment, render_page
from newsletter.mail.compose import compose_notice, unsubscribe_url
from newsletter.mail.unsubscribe import make_token
from newsletter.models import DeliveryReport, NoticeKind, Subscriber

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from sqlalchemy.engine import Engine

    from newsletter.config import Config, Secrets
    from newsletter.models import Delivery, Outcome

logger = logging.getLogger(__name__)

DRAIN_EVERY_S = 5.0
EXPIRE_EVERY = timedelta(hours=1)
RETRY_DEFERRED_AFTER = timedelta(minutes=15)
SUBJECTS = {
    NoticeKind.CONFIRM: "Confirm your subscription to {name}",
    NoticeKind.WELCOME: "Welcome to {name}",
}


@dataclass
class NoticeLedger:
    """The delivery.sender.Ledger of one notice run: the claimed notices are kept by subscriber
    (each subscriber has at most one unfinished), so `build` knows what each message is."""

    engine: Engine
    run_id: int
    clock: Callable[[], datetime]
    claimed: dict[int, notice_store.Notice] = field(default_factory=dict)
    _writing: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, limit: int) -> list[Delivery]:
        with self._writing:
            found = notice_store.claim(self.engine, self.run_id, limit, self.clock())
        self.claimed.update({notice.delivery.subscriber_id: notice for notice in found})
        return [notice.delivery for notice in found]

    def record(self, outcomes: Sequence[Outcome]) -> None:
        with self._writing:
            notice_store.record(self.engine, outcomes, self.clock())

    def next_due(self) -> datetime | None:
        return notice_store.next_due(self.engine)

    def heartbeat(self) -> None:
        send_runs.heartbeat(self.engine, self.run_id, self.clock())

    def take_over(self) -> tuple[int, int]:
        with self._writing:
            return send_runs.take_over(
                self.engine, send_runs.NOTICE_QUEUE, self.run_id, self.clock()
            )

    def reopen(self, subscriber_ids: Sequence[int]) -> None:
        with self._writing:
            notice_store.reopen(self.engine, subscriber_ids, self.clock())


def notice_message(config: Config, key: bytes, notice: notice_store.Notice, now: datetime) -> bytes:
    """The confirmation or welcome mail of one claimed notice, as bytes for SMTP."""
    info = config.newsletter
    job = notice.delivery
    context: dict[str, object] = {
        "list_name": info.name,
        "base_url": info.base_url,
        "reader": job.name,
        "days": config.signup.confirm_days,
        "postal_address": info.postal_address,
    }
    unsubscribe = None
    if notice.kind is NoticeKind.CONFIRM:
        context["link"] = confirm_link(config, key, notice.id, notice.created_at)
    else:
        unsubscribe = unsubscribe_url(info, make_token(key, info.list_id, job.email))
        context["link"] = unsubscribe
    env = make_environment(config.templates.dir)
    return compose_notice(
        info,
        Subscriber(job.email, job.name),
        subject=SUBJECTS[notice.kind].format(name=info.name),
        text=render_page(env, f"notice_{notice.kind}.txt.j2", **context),
        html=render_page(env, f"notice_{notice.kind}.html.j2", **context),
        msgid=job.message_id,
        now=now,
        unsubscribe=unsubscribe,
    )


def deliver_notices(
    config: Config,
    secrets: Secrets,
    clock: Callable[[], datetime],
    key: bytes | None = None,
) -> DeliveryReport:
    """Send every notice due now (one run); DeliveryError if the server refuses the run.
    `key` signs the links (default: the unsubscribe key, see app/send.py)."""
    engine = database(config)
    now = clock()
    due, claimed = notice_store.due_count(engine, now)
    if not due and claimed and send_runs.end_dead_runs(engine, now):
        due, claimed = notice_store.due_count(engine, now)  # a dead run's claims are back
    if not due:
        return DeliveryReport()
    key = key or unsubscribe_key(config, secrets)
    sign = message_signer(config, secrets)
    run_id = send_runs.start_run(engine, send_runs.NOTICE_QUEUE, now)
    ledger = NoticeLedger(engine, run_id, clock)
    try:
        with ExitStack() as stack:
            settings, _where = open_destination(config, stack)
            sender = Sender(
                settings,
                secrets.smtp_password,
                envelope_sender=lambda job: config.newsletter.envelope_sender,
                build=lambda job: sign(
                    notice_message(config, key, ledger.claimed[job.subscriber_id], clock())
                ),
                policy=config.delivery,
                clock=clock,
            )
            return sender.run(ledger)
    finally:
        send_runs.finish_run(engine, run_id, clock())


class NoticeWorker:
    """Drains the notices in a background thread until stopped (see the module docstring)."""

    def __init__(
        self, config: Config, secrets: Secrets, clock: Callable[[], datetime], key: bytes
    ) -> None:
        self.config = config
        self.secrets = secrets
        self.clock = clock
        self.key = key
        """What signs the links: the site's key, so they verify where they are clicked."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notices", daemon=True)
        self._expired_at: datetime | None = None
        self._retried_at: datetime | None = None

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Drain now (a signup or a confirmation just queued a notice)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self.drain()
            self._wake.wait(DRAIN_EVERY_S)

    def _chores(self, now: datetime) -> None:
        """Hourly, erase expired signups; every RETRY_DEFERRED_AFTER, give notices deferred
        that long a fresh set of attempts (never on every round: each is a write)."""
        if self._expired_at is None or now - self._expired_at >= EXPIRE_EVERY:
            self._expired_at = now
            erased = expire_signups(self.config, now)
            if erased:
                logger.info("erased %d signup(s) never confirmed", erased)
        if self._retried_at is None or now - self._retried_at >= RETRY_DEFERRED_AFTER:
            self._retried_at = now
            notice_store.retry_deferred(database(self.config), now - RETRY_DEFERRED_AFTER, now)

    def drain(self) -> None:
        """One round: the timed chores when due, then send what is due. A failure is one line
        in the log; the next round tries again."""
        now = self.clock()
        try:
            self._chores(now)
            report = deliver_notices(self.config, self.secrets, self.clock, self.key)
        except (NewsletterError, SQLAlchemyError, OSError) as err:
            logger.warning("notices not sent this round: %s", err)
            logger.debug("the notices' round failed", exc_info=True)
            return
        if report.sent or report.refusals:
            logger.info(
                "notices: %d sent, %d refused, %d to retry",
                report.sent,
                len(report.refusals),
                report.retried,
            )
