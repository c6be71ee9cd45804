"""The concurrent sender: claimed messages from a ledger, sent over N reused connections.

The sender takes claimed messages from a ledger (claim -> send -> record, see db/ledger.py) and
sends them over `delivery.connections` connections, at most `delivery.rate_per_s` a second,
classifying every failure (delivery/smtp.py). A server that cannot be reached at all before
anything was sent in this run stops the run. One case no sender can close: the server stored a
message but its reply was lost. The message is then sent again with the same Message-ID, so the
receiving side can drop the copy.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from newsletter.delivery.smtp import SmtpConnection, SmtpFailure, Verdict, classify
from newsletter.errors import DeliveryError
from newsletter.models import Delivery, DeliveryReport, LedgerStatus, Outcome

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from newsletter.config import DeliverySection, SmtpSection

logger = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
CLAIM_PER_CONNECTION = 16
"""Messages claimed ahead per connection: enough to keep every connection busy between claims."""


class RateLimiter:
    """At most `rate_per_s` acquisitions a second across all threads (0: no limit)."""

    def __init__(self, rate_per_s: float) -> None:
        self.interval = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


class Ledger(Protocol):
    """Where the sender claims messages and records what happened to them (db/ledger.py)."""

    def claim(self, limit: int) -> list[Delivery]: ...

    def record(self, outcomes: Sequence[Outcome]) -> None: ...

    def next_due(self) -> datetime | None: ...

    def heartbeat(self) -> None: ...


class Sender:
    """Sends every claimable message of an issue, concurrently, and reports what happened."""

    def __init__(
        self,
        settings: SmtpSection,
        password: str | None,
        *,
        envelope_sender: str,
        build: Callable[[Delivery], bytes],
        policy: DeliverySection,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.password = password
        self.envelope_sender = envelope_sender
        self.build = build
        self.policy = policy
        self.clock = clock
        self._limiter = RateLimiter(policy.rate_per_s)
        self._stop = threading.Event()
        self._reached = threading.Event()  # set once any message went through in this run
        self._fatal: SmtpFailure | None = None

    def _outcome(self, job: Delivery, failure: SmtpFailure) -> Outcome:
        verdict = classify(failure)
        reply = str(failure)
        unreachable = (
            failure.stage == "connect" and failure.code is None and not self._reached.is_set()
        )
        if verdict is Verdict.FATAL or unreachable:
            self._fatal = self._fatal or failure
            self._stop.set()
            return Outcome(job.subscriber_id, LedgerStatus.PENDING, reply)
        if verdict is Verdict.RETRY:
            if job.attempts >= self.policy.max_attempts:
                return Outcome(
                    job.subscriber_id,
                    LedgerStatus.DEFERRED,
                    f"after {job.attempts} attempts: {reply}",
                )
            delay = self.policy.retry_backoff_s * 2 ** (job.attempts - 1)
            return Outcome(
                job.subscriber_id,
                LedgerStatus.PENDING,
                reply,
                retry_at=self.clock() + timedelta(seconds=delay),
            )
        if verdict is Verdict.BOUNCE:
            return Outcome(job.subscriber_id, LedgerStatus.BOUNCED, reply, bounce_subscriber=True)
        return Outcome(job.subscriber_id, LedgerStatus.FAILED, reply)

    @staticmethod
    def _tally(report: DeliveryReport, outcome: Outcome, email: str) -> None:
        if outcome.status == LedgerStatus.SENT:
            report.sent += 1
        elif outcome.status == LedgerStatus.PENDING and outcome.retry_at is not None:
            report.retried += 1
        elif outcome.status in (LedgerStatus.DEFERRED, LedgerStatus.BOUNCED, LedgerStatus.FAILED):
            report.refusals.append((email, f"{outcome.status}: {outcome.reply}"))
            if outcome.status == LedgerStatus.DEFERRED:
                report.retried += 1
                report.deferred += 1
            elif outcome.status == LedgerStatus.BOUNCED:
                report.bounced += 1
            else:
                report.failed += 1

    def _worker(
        self,
        jobs: queue.Queue[Delivery | None],
        results: queue.Queue[tuple[Delivery, Outcome]],
        ledger: Ledger,
    ) -> None:
        """Send claimed messages over one connection, recording each result as soon as it is known.

        Recording here rather than in the main thread keeps the window between the server's
        acceptance and the ledger's record to one message per connection.
        """
        with SmtpConnection(self.settings, self.password) as connection:
            while (job := jobs.get()) is not None:
                outcome = self._deliver(connection, job)
                ledger.record([outcome])
                results.put((job, outcome))

    def _deliver(self, connection: SmtpConnection, job: Delivery) -> Outcome:
        if self._stop.is_set():
            return Outcome(job.subscriber_id, LedgerStatus.PENDING, "run stopped before sending")
        self._limiter.acquire()
        try:
            connection.send(self.envelope_sender, job.email, self.build(job))
        except SmtpFailure as failure:
            return self._outcome(job, failure)
        except Exception as err:  # a bug must not leave the claim hanging
            logger.exception("sending to %s failed unexpectedly", job.email)
            self._stop.set()
            return Outcome(job.subscriber_id, LedgerStatus.PENDING, f"unexpected error: {err}")
        self._reached.set()
        return Outcome(job.subscriber_id, LedgerStatus.SENT, "250 accepted")

    def run(
        self, ledger: Ledger, on_progress: Callable[[int], None] = lambda n: None
    ) -> DeliveryReport:
        """Claim, send and record until nothing is due within `max_wait_s`, or a fatal reply."""
        report = DeliveryReport()
        jobs: queue.Queue[Delivery | None] = queue.Queue()
        results: queue.Queue[tuple[Delivery, Outcome]] = queue.Queue()
        workers = [
            threading.Thread(
                target=self._worker, args=(jobs, results, ledger), daemon=True, name=f"smtp-{i}"
            )
            for i in range(self.policy.connections)
        ]
        for worker in workers:
            worker.start()
        # Jobs handed to the workers whose outcome this thread has not counted yet. A message
        # retried soon enough can be claimed again before its first outcome is counted: each
        # claim counts, so the run cannot end while either job is out.
        in_flight = 0
        window = self.policy.connections * CLAIM_PER_CONNECTION
        last_beat = time.monotonic()
        try:
            while True:
                if not self._stop.is_set() and in_flight <= window // 2:
                    for job in ledger.claim(window - in_flight):
                        in_flight += 1
                        jobs.put(job)
                if not in_flight:
                    if self._stop.is_set() or not self._wait_for_retry(ledger):
                        break
                    continue
                in_flight -= self._collect([results.get()], results, report, on_progress)
                if time.monotonic() - last_beat > HEARTBEAT_S:
                    ledger.heartbeat()
                    last_beat = time.monotonic()
        finally:
            self._stop.set()
            for _ in workers:
                jobs.put(None)
            for worker in workers:
                worker.join()
            self._collect([], results, report, on_progress)
        if self._fatal is not None:
            raise DeliveryError(self._fatal_message(self._fatal, report))
        return report

    def _fatal_message(self, failure: SmtpFailure, report: DeliveryReport) -> str:
        where = f"SMTP server {self.settings.host}:{self.settings.port}"
        done = f"{report.sent} sent before it stopped" if report.sent else "nothing was sent"
        if failure.stage == "connect" and failure.code is None:
            return (
                f"{where} is unreachable ({failure.text}); {done}. Check smtp.host, smtp.port and "
                "smtp.security, then run the same command"
            )
        advice = (
            "Check smtp.security (starttls on 587, tls on 465) and, for a private CA, smtp.ca_file"
            if failure.stage == "tls"
            else "Fix the account or the sending policy"
        )
        return (
            f"{where} refused the run at {failure.stage}: {failure}; {done}. {advice}, then run "
            "the same command"
        )

    def _collect(
        self,
        done: list[tuple[Delivery, Outcome]],
        results: queue.Queue[tuple[Delivery, Outcome]],
        report: DeliveryReport,
        on_progress: Callable[[int], None],
    ) -> int:
        """Count `done` and every other result already waiting (the workers recorded them);
        returns how many jobs came back."""
        while True:
            try:
                done.append(results.get_nowait())
            except queue.Empty:
                break
        for job, outcome in done:
            self._tally(report, outcome, job.email)
        on_progress(sum(outcome.status != LedgerStatus.PENDING for _, outcome in done))
        return len(done)

    def _wait_for_retry(self, ledger: Ledger) -> bool:
        """Sleep until the next retry falls due; False if none is due within max_wait_s."""
        due = ledger.next_due()
        if due is None:
            return False
        wait = (due.replace(tzinfo=None) - self.clock().replace(tzinfo=None)).total_seconds()
        if wait > self.policy.max_wait_s:
            return False
        if wait > 0:
            time.sleep(wait)
        return True
