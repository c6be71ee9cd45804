"""Delivery over SMTP: connections, reply classification, the concurrent sender, and the
built-in local capture server.

The sender takes claimed messages from a ledger (claim -> send -> record, see store.py) and
sends them over N reused connections, at most `rate_per_s` a second. Each SMTP answer is
classified (RFC 5321 reply codes, RFC 3463 enhanced status codes):
- retry later: 4xx, 421, 552 at RCPT (RFC 5321 section 4.5.3.1.10), timeouts, dropped connections;
- permanent: other 5xx; with 5.1.x (bad mailbox) the subscriber is also marked bounced;
- stop the run and alert: AUTH failures (530/535), 5.7.x policy blocks, 554 at the greeting,
  a TLS handshake that fails (an unverifiable certificate), and a server that cannot be reached
  at all before anything was sent in this run.
One case no sender can close: the server stored a message but its reply was lost. The message
is then sent again with the same Message-ID, so the receiving side can drop the copy.
"""

from __future__ import annotations

import asyncio
import logging
import mailbox
import queue
import re
import smtplib
import socket
import ssl
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self

from aiosmtpd.controller import Controller

from newsletter.errors import DeliveryError
from newsletter.models import (
    BOUNCED,
    DEFERRED,
    FAILED,
    PENDING,
    SENT,
    Delivery,
    DeliveryReport,
    Outcome,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from types import TracebackType

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
Security = Literal["none", "starttls", "tls"]
HEARTBEAT_S = 10.0
CLAIM_PER_CONNECTION = 16
"""Messages claimed ahead per connection: enough to keep every connection busy between claims."""
SERVICE_CLOSING = 421
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how to connect; the password comes from the environment, never the file."""

    host: str
    port: int
    security: Security
    timeout_s: float
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None


class Verdict(Enum):
    RETRY = "retry"
    PERMANENT = "permanent"
    BOUNCE = "bounce"
    FATAL = "fatal"


@dataclass(frozen=True, slots=True)
class SmtpFailure(Exception):
    """An SMTP exchange that did not end in acceptance; `code` is None without a reply."""

    stage: str
    code: int | None
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}" if self.code is not None else self.text


def classify(failure: SmtpFailure) -> Verdict:
    """What to do about one failed exchange (see the module docstring for the rules)."""
    code, stage = failure.code, failure.stage
    enhanced = _ENHANCED.match(failure.text)
    status_class, subject = (enhanced.group(1), enhanced.group(2)) if enhanced else ("", "")
    if (
        stage == "tls"  # a certificate that does not verify will not verify on retry either
        or code in (530, 535)
        or (status_class, subject) == ("5", "7")
        or (stage == "connect" and code == 554)
    ):
        return Verdict.FATAL
    if (
        code is None
        or code == SERVICE_CLOSING
        or 400 <= code < 500
        or (stage == "rcpt" and code == 552)
    ):
        return Verdict.RETRY
    return Verdict.BOUNCE if (status_class, subject) == ("5", "1") else Verdict.PERMANENT


def _data_unstuffed(smtp: smtplib.SMTP, msg: bytes) -> tuple[int, bytes]:
    """smtplib's DATA without its dot-stuffing pass, for messages that never start a line with
    '.' (compose.MessageFactory guarantees it): that pass is a regex over the whole message and
    costs more than building the message itself."""
    smtp.putcmd("data")
    code, reply = smtp.getreply()
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    if not msg.endswith(b"\r\n"):
        msg += b"\r\n"
    smtp.send(msg + b".\r\n")
    return smtp.getreply()


class _SMTP(smtplib.SMTP):
    def data(self, msg: Any) -> tuple[int, bytes]:
        return _data_unstuffed(self, msg)


class _SMTP_SSL(smtplib.SMTP_SSL):
    def data(self, msg: Any) -> tuple[int, bytes]:
        return _data_unstuffed(self, msg)


def _text(reply: str | bytes) -> str:
    return reply if isinstance(reply, str) else reply.decode(errors="replace")


class SmtpConnection:
    """One SMTP session: connect, secure (certificates verified), log in, send, quit."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.ca_file)

    def open(self) -> None:
        s = self.settings
        try:
            smtp: smtplib.SMTP
            if s.security == "tls":
                smtp = _SMTP_SSL(s.host, s.port, timeout=s.timeout_s, context=self._context())
            else:
                smtp = _SMTP(s.host, s.port, timeout=s.timeout_s)
            self._smtp = smtp
            if s.security == "starttls":
                smtp.starttls(context=self._context())
            if s.username:
                smtp.login(s.username, s.password or "")
        except smtplib.SMTPResponseException as err:
            self.close()
            stage = "auth" if isinstance(err, smtplib.SMTPAuthenticationError) else "connect"
            raise SmtpFailure(stage, err.smtp_code, _text(err.smtp_error)) from err
        except ssl.SSLError as err:
            self.close()
            raise SmtpFailure("tls", None, f"TLS failed: {err.reason or err}") from err
        except (smtplib.SMTPException, OSError) as err:
            self.close()
            raise SmtpFailure("connect", None, f"cannot connect: {err}") from err

    def close(self) -> None:
        """Say QUIT (or just drop the socket if the server is gone)."""
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def send(self, sender: str, recipient: str, message: bytes) -> None:
        """Send one message to one recipient; every refusal or loss raises SmtpFailure."""
        if self._smtp is None:
            self.open()
        assert self._smtp is not None
        try:
            refused = self._smtp.sendmail(sender, [recipient], message)
        except smtplib.SMTPRecipientsRefused as err:
            code, reply = err.recipients.get(recipient, next(iter(err.recipients.values())))
            if code == SERVICE_CLOSING:  # smtplib has closed the socket: open a new one next time
                self._drop()
            raise SmtpFailure("rcpt", code, _text(reply)) from err
        except smtplib.SMTPSenderRefused as err:
            raise SmtpFailure("mail", err.smtp_code, _text(err.smtp_error)) from err
        except smtplib.SMTPDataError as err:
            raise SmtpFailure("data", err.smtp_code, _text(err.smtp_error)) from err
        except smtplib.SMTPServerDisconnected as err:
            self._drop()
            raise SmtpFailure("data", None, f"connection lost: {err}") from err
        except smtplib.SMTPResponseException as err:
            self._drop()
            raise SmtpFailure("data", err.smtp_code, _text(err.smtp_error)) from err
        except (smtplib.SMTPException, OSError) as err:
            self._drop()
            raise SmtpFailure("data", None, f"no answer: {err}") from err
        if recipient in refused:  # a partial refusal that smtplib reports without raising
            code, reply = refused[recipient]
            raise SmtpFailure("rcpt", code, _text(reply))


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
    """Where the sender claims messages and records what happened to them (store.py)."""

    def claim(self, limit: int) -> list[Delivery]: ...

    def record(self, outcomes: Sequence[Outcome]) -> None: ...

    def next_due(self) -> datetime | None: ...

    def heartbeat(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """How hard to try: connections, rate, attempts per message and back-off between them."""

    connections: int = 4
    rate_per_s: float = 0.0
    max_attempts: int = 5
    backoff_s: float = 2.0
    max_wait_s: float = 300.0
    """Longest this run waits for a retry to fall due; later retries are left to the next run."""


class Sender:
    """Sends every claimable message of an issue, concurrently, and reports what happened."""

    def __init__(
        self,
        settings: SmtpSettings,
        envelope_sender: str,
        build: Callable[[Delivery], bytes],
        policy: SendPolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
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
            return Outcome(job.subscriber_id, PENDING, reply)
        if verdict is Verdict.RETRY:
            if job.attempts >= self.policy.max_attempts:
                return Outcome(
                    job.subscriber_id, DEFERRED, f"after {job.attempts} attempts: {reply}"
                )
            delay = self.policy.backoff_s * 2 ** (job.attempts - 1)
            return Outcome(
                job.subscriber_id, PENDING, reply, retry_at=self.clock() + timedelta(seconds=delay)
            )
        if verdict is Verdict.BOUNCE:
            return Outcome(job.subscriber_id, BOUNCED, reply, bounce_subscriber=True)
        return Outcome(job.subscriber_id, FAILED, reply)

    @staticmethod
    def _tally(report: DeliveryReport, outcome: Outcome, email: str) -> None:
        if outcome.status == SENT:
            report.sent += 1
        elif outcome.status == PENDING and outcome.retry_at is not None:
            report.retried += 1
        elif outcome.status in (DEFERRED, BOUNCED, FAILED):
            report.refusals.append((email, f"{outcome.status}: {outcome.reply}"))
            if outcome.status == DEFERRED:
                report.retried += 1
                report.deferred += 1
            elif outcome.status == BOUNCED:
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
        with SmtpConnection(self.settings) as connection:
            while (job := jobs.get()) is not None:
                outcome = self._deliver(connection, job)
                ledger.record([outcome])
                results.put((job, outcome))

    def _deliver(self, connection: SmtpConnection, job: Delivery) -> Outcome:
        if self._stop.is_set():
            return Outcome(job.subscriber_id, PENDING, "run stopped before sending")
        self._limiter.acquire()
        try:
            connection.send(self.envelope_sender, job.email, self.build(job))
        except SmtpFailure as failure:
            return self._outcome(job, failure)
        except Exception as err:  # a bug must not leave the claim hanging
            logger.exception("sending to %s failed unexpectedly", job.email)
            self._stop.set()
            return Outcome(job.subscriber_id, PENDING, f"unexpected error: {err}")
        self._reached.set()
        return Outcome(job.subscriber_id, SENT, "250 accepted")

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
        on_progress(sum(outcome.status != PENDING for _, outcome in done))
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


class _MaildirHandler:
    """aiosmtpd handler that files every accepted message, byte for byte, into a Maildir."""

    def __init__(self, directory: Path) -> None:
        self.maildir = mailbox.Maildir(directory, create=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        trace = f"X-Envelope-From: {envelope.mail_from}\r\nX-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        self.maildir.add(trace.encode() + envelope.original_content)
        return "250 Message accepted for delivery"


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now (aiosmtpd's Controller cannot start on port 0)."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


class CaptureServer:
    """The built-in SMTP server on 127.0.0.1 that stores what it receives in a Maildir."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self.port = free_loopback_port()
        self._loop = asyncio.new_event_loop()
        self._controller = Controller(
            _MaildirHandler(maildir), hostname=LOOPBACK, port=self.port, loop=self._loop
        )

    def settings(self, timeout_s: float) -> SmtpSettings:
        return SmtpSettings(host=LOOPBACK, port=self.port, security="none", timeout_s=timeout_s)

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._controller.stop()
        self._loop.close()
