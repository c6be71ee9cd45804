"""The concurrent sender: claimed messages from a ledger, sent over N reused connections.

The sender takes claimed messages from a ledger (claim -> send -> record, see db/ledger.py) and
sends them over `delivery.connections` connections, at most `delivery.rate_per_s` a second,
judging every failure by its stage and cause (delivery/smtp.py) and every pattern of failures
(delivery/guard.py). A server that cannot be reached at all before anything was sent in this
run stops the run. A fault of this machine (the ledger cannot be written) stops it too, never
blaming a reader. One case no sender can close: the server stored a message but its reply was
lost. Such an *uncertain* message goes once more per run, after a back-off, with the same
Message-ID, so the receiving side can drop the copy.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from newsletter.delivery.guard import AGAIN, RunGuard, Stop
from newsletter.delivery.recorder import GroupRecorder
from newsletter.delivery.returns import Returns
from newsletter.delivery.smtp import SmtpConnection, SmtpFailure, Verdict, classify
from newsletter.errors import DatabaseError, DeliveryError
from newsletter.models import Delivery, DeliveryReport, LedgerStatus, Outcome

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from newsletter.config import DeliverySection, SmtpSection

logger = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
PEER_POLL_S = 1.0
"""How often a sender with nothing left checks on the claims a peer still holds."""
CLAIM_PER_CONNECTION = 16
"""Messages claimed ahead per connection: enough to keep every connection busy between claims."""
GATHER_S = 0.002
"""How long a result waits for those of the other connections (all but one) to share its
transaction: a fraction of one message's time over a fast link, nothing over a slow one."""


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

    def reopen(self, subscriber_ids: Sequence[int]) -> None:
        """Undo this run's refusals of these messages: pending again, nobody marked."""

    def take_over(self) -> tuple[int, int]:
        """Release claims of dead peers; (messages claimable now, still held by live peers)."""


class Sender:
    """Sends every claimable message of an issue, concurrently, and reports what happened;
    `envelope_sender(job)` is each message's MAIL FROM (with VERP, its own)."""

    def __init__(
        self,
        settings: SmtpSection,
        password: str | None,
        *,
        envelope_sender: Callable[[Delivery], str],
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
        self._guard = RunGuard(policy)
        self._stop = threading.Event()
        self._reached = threading.Event()  # set once any message went through in this run
        self._lock = threading.Lock()
        self._stopped: Stop | None = None
        self._lost_once: set[int] = set()
        self._final: dict[int, tuple[str, Outcome]] = {}
        """The last outcome of each message refused or deferred in this run (a stop may undo
        some); sent ones are only counted, so a run's memory does not grow with the list."""
        self._sent = 0
        self._peer_waited = 0.0

    def _halt(self, stop: Stop | None) -> None:
        """Stop claiming and sending; the first reason given is the one reported, and the
        refusals every reason undoes (messages in flight may add to them) are all undone."""
        if stop is None:
            return
        with self._lock:
            first = self._stopped or stop
            reopen = tuple(dict.fromkeys([*first.reopen, *stop.reopen]))
            self._stopped = dataclasses.replace(first, reopen=reopen)
        self._stop.set()

    def _outcome(self, job: Delivery, failure: SmtpFailure) -> Outcome:
        verdict = classify(failure)
        reply = str(failure)
        unreachable = (
            failure.stage == "connect" and failure.code is None and not self._reached.is_set()
        )
        if verdict is Verdict.FATAL or unreachable:
            self._halt(self._refused_stop(job, failure))
            return Outcome(job.subscriber_id, LedgerStatus.PENDING, reply)
        self._halt(self._guard.failed(job, failure, verdict))
        if verdict is Verdict.UNCERTAIN:
            with self._lock:
                again = job.subscriber_id in self._lost_once
                self._lost_once.add(job.subscriber_id)
            if again:
                return Outcome(
                    job.subscriber_id,
                    LedgerStatus.DEFERRED,
                    f"reply lost twice in this run: {reply}",
                    uncertain=True,
                )
            return self._retry(job, reply, uncertain=True)
        if verdict is Verdict.RETRY:
            return self._retry(job, reply)
        if verdict is Verdict.BOUNCE:
            return Outcome(job.subscriber_id, LedgerStatus.BOUNCED, reply, bounce_subscriber=True)
        return Outcome(job.subscriber_id, LedgerStatus.FAILED, reply)

    def _retry(self, job: Delivery, reply: str, *, uncertain: bool = False) -> Outcome:
        if job.attempts >= self.policy.max_attempts:
            return Outcome(
                job.subscriber_id,
                LedgerStatus.DEFERRED,
                f"after {job.attempts} attempts: {reply}",
                uncertain=uncertain,
            )
        delay = self.policy.retry_backoff_s * 2 ** (job.attempts - 1)
        return Outcome(
            job.subscriber_id,
            LedgerStatus.PENDING,
            reply,
            retry_at=self.clock() + timedelta(seconds=delay),
            uncertain=uncertain,
        )

    def _refused_stop(self, job: Delivery, failure: SmtpFailure) -> Stop:
        """Why the server refused the whole run, and what to change."""
        where = f"SMTP server {self.settings.host}:{self.settings.port}"
        if failure.stage == "connect" and failure.code is None:
            return Stop(
                f"{where} is unreachable ({failure.text})",
                "Check smtp.host, smtp.port and smtp.security, then run the same command",
                fatal=True,
            )
        advice = {
            "tls": "Check smtp.security (starttls on 587, tls on 465) and, for a private CA, "
            "smtp.ca_file",
            "mail": f"The server refuses the sender {self.envelope_sender(job)}: check "
            "newsletter.from_address (and bounce_address) and that the account may send as it",
            "data": "The server refuses the message itself (its size, a line or its content): "
            "fix the issue",
        }.get(failure.stage, "Fix the account or the sending policy")
        return Stop(
            f"{where} refused the run at {failure.stage}: {failure}",
            f"{advice}, then run the same command",
            fatal=True,
        )

    def _worker(
        self,
        jobs: queue.Queue[Delivery | None],
        returns: Returns,
        recorder: GroupRecorder,
    ) -> None:
        """Send claimed messages over one connection, each result recorded before the next.

        Recording here rather than in the main thread keeps the window between the server's
        acceptance and the ledger's record to one message per connection; the recorder waits a
        moment for the other connections' results and writes them in one transaction. A result
        that cannot be recorded (a full disk, a database locked past its timeout) stops the
        run; its claim stays, and the next run sends that message again with the same
        Message-ID.
        """
        with SmtpConnection(self.settings, self.password) as connection:
            while (job := jobs.get()) is not None:
                returns.put(job, self._send_and_record(connection, recorder, job))

    def _send_and_record(
        self, connection: SmtpConnection, recorder: GroupRecorder, job: Delivery
    ) -> Outcome:
        """One job's outcome, recorded; a bug or a write that fails stops the run, and the
        worker goes on handing its jobs back, so the run still ends."""
        try:
            outcome = self._deliver(connection, job)
        except Exception as err:  # a bug must not leave the claim hanging
            logger.exception("sending to %s failed unexpectedly", job.email)
            self._halt(
                Stop(
                    f"sending failed unexpectedly ({err})",
                    "Run the same command again with --verbose for the traceback, and report it",
                    fatal=True,
                    local=True,
                )
            )
            return Outcome(job.subscriber_id, LedgerStatus.PENDING, f"unexpected error: {err}")
        try:
            recorder.record(outcome)
        except Exception as err:  # this machine's fault: never a reader's
            logger.debug("recording the result for %s failed", job.email, exc_info=True)
            self._halt(
                Stop(
                    f"could not record a result in the database ({err})",
                    f"Free space or end what holds the database, {AGAIN}: messages in "
                    "flight may go again with the same Message-ID",
                    fatal=True,
                    local=True,
                )
            )
        return outcome

    def _deliver(self, connection: SmtpConnection, job: Delivery) -> Outcome:
        if self._stop.is_set():
            return Outcome(job.subscriber_id, LedgerStatus.PENDING, "run stopped before sending")
        self._limiter.acquire()
        try:
            connection.send(self.envelope_sender(job), job.email, self.build(job))
        except SmtpFailure as failure:
            return self._outcome(job, failure)
        self._reached.set()
        self._guard.sent()
        return Outcome(job.subscriber_id, LedgerStatus.SENT, "250 accepted")

    def run(
        self, ledger: Ledger, on_progress: Callable[[int], None] = lambda n: None
    ) -> DeliveryReport:
        """Claim, send and record until nothing is due within `max_wait_s`, or a stop."""
        report = DeliveryReport()
        jobs: queue.Queue[Delivery | None] = queue.Queue()
        returns = Returns(low=self.policy.connections * CLAIM_PER_CONNECTION // 2)
        gather = max(1, self.policy.connections - 1)
        recorder = GroupRecorder(ledger, gather=gather, patience_s=GATHER_S)
        workers = [
            threading.Thread(
                target=self._worker, args=(jobs, returns, recorder), daemon=True, name=f"smtp-{i}"
            )
            for i in range(self.policy.connections)
        ]
        for worker in workers:
            worker.start()
        try:
            self._feed(ledger, jobs, returns, report, on_progress)
        finally:
            self._stop.set()
            for _ in workers:
                jobs.put(None)
            for worker in workers:
                worker.join()
            self._collect(returns.take(), report, on_progress)
        return self._finish(ledger, report)

    def _feed(
        self,
        ledger: Ledger,
        jobs: queue.Queue[Delivery | None],
        returns: Returns,
        report: DeliveryReport,
        on_progress: Callable[[int], None],
    ) -> None:
        """Keep the workers supplied with claims and count what comes back.

        `returns.out` counts the jobs whose outcome this thread has not counted yet. A message
        retried soon enough can be claimed again before its first outcome is counted: each
        claim counts, so the run cannot end while either job is out.
        """
        window = self.policy.connections * CLAIM_PER_CONNECTION
        last_beat = time.monotonic()
        while True:
            self._halt(self._guard.overdue())
            in_flight = returns.out
            if not self._stop.is_set() and in_flight <= returns.low:
                claimed = ledger.claim(window - in_flight)
                returns.hand_out(len(claimed))
                for job in claimed:
                    jobs.put(job)
            if not returns.out:
                if self._stop.is_set() or not self._next_round(ledger):
                    return
                continue
            self._collect(returns.take(timeout=HEARTBEAT_S), report, on_progress)
            if time.monotonic() - last_beat > HEARTBEAT_S:
                ledger.heartbeat()
                last_beat = time.monotonic()

    def _finish(self, ledger: Ledger, report: DeliveryReport) -> DeliveryReport:
        """Count the run's final outcomes; raise for a stop that is an error."""
        stop = self._stopped
        if stop is not None and stop.reopen:
            ledger.reopen(stop.reopen)
            for subscriber_id in stop.reopen:
                self._final.pop(subscriber_id, None)
        report.sent += self._sent
        for email, outcome in self._final.values():
            _count(report, email, outcome)
        report.uncertain = len(self._lost_once)  # messages, however often their reply was lost
        if stop is None:
            return report
        done = f"{report.sent} sent before it stopped" if report.sent else "nothing was sent"
        message = f"{stop.reason}; {done}. {stop.advice}"
        if stop.fatal:
            raise (DatabaseError if stop.local else DeliveryError)(message)
        report.paused = message
        return report

    def _collect(
        self,
        done: list[tuple[Delivery, Outcome]],
        report: DeliveryReport,
        on_progress: Callable[[int], None],
    ) -> None:
        """Count results the workers handed back (and recorded)."""
        for job, outcome in done:
            if outcome.status == LedgerStatus.PENDING and outcome.retry_at is not None:
                report.retried += 1
            if outcome.status == LedgerStatus.SENT:  # final, and never undone: counted now
                self._sent += 1
            elif outcome.status != LedgerStatus.PENDING:
                self._final[job.subscriber_id] = (job.email, outcome)
        on_progress(sum(outcome.status != LedgerStatus.PENDING for _, outcome in done))

    def _next_round(self, ledger: Ledger) -> bool:
        """With nothing claimable: whether to claim again, after waiting for a retry to fall
        due, after taking over a dead peer's claims, or after a pause while a live peer holds
        some (they may come back; all such pauses of a run add up to at most max_wait_s)."""
        if self._wait_for_retry(ledger):
            return True
        claimable, held = ledger.take_over()
        if claimable:
            return True
        if not held or self._peer_waited >= self.policy.max_wait_s:
            return False
        self._stop.wait(PEER_POLL_S)
        self._peer_waited += PEER_POLL_S
        ledger.heartbeat()
        return True

    def _wait_for_retry(self, ledger: Ledger) -> bool:
        """Sleep until the next retry falls due; False if none is due within max_wait_s."""
        due = ledger.next_due()
        if due is None:
            return False
        wait = (due.replace(tzinfo=None) - self.clock().replace(tzinfo=None)).total_seconds()
        if wait > self.policy.max_wait_s:
            return False
        while wait > 0:  # beat while waiting, so peers do not take this run for dead
            self._stop.wait(min(wait, HEARTBEAT_S))
            wait -= HEARTBEAT_S
            ledger.heartbeat()
        return True


def _count(report: DeliveryReport, email: str, outcome: Outcome) -> None:
    """Add one refused or deferred message's final outcome in this run to the report."""
    status = outcome.status
    report.refusals.append((email, f"{status}: {outcome.reply}"))
    if status == LedgerStatus.DEFERRED:
        report.retried += 1
        report.deferred += 1
    elif status == LedgerStatus.BOUNCED:
        report.bounced += 1
    elif status == LedgerStatus.FAILED:
        report.failed += 1
