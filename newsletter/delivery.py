"""Delivery over SMTP, the built-in local capture server, and the per-issue send ledger.

The ledger records each address after the server accepts its message, fsynced, so running the
same command again after a crash or an SMTP failure sends only what is missing. One case stays
open by nature: the server stored a message but its reply was lost; the resend then carries the
same deterministic Message-ID, so the receiving side can drop the copy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mailbox
import os
import smtplib
import socket
import ssl
from contextlib import closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Self

from aiosmtpd.controller import Controller

from newsletter.errors import DeliveryError
from newsletter.models import DeliveryReport

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from email.message import EmailMessage
    from pathlib import Path
    from types import TracebackType

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
Security = Literal["none", "starttls", "tls"]


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how to connect; the password comes from the environment, never the file."""

    host: str
    port: int
    security: Security
    timeout_s: float
    username: str | None = None
    password: str | None = field(default=None, repr=False)


class SmtpOutbox:
    """One SMTP connection, opened on enter, with TLS verified against the system's CAs."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def open(self) -> None:
        """Connect, secure and log in; failures raise DeliveryError with the fix to try."""
        self._smtp = self._connect()

    def close(self) -> None:
        """Say QUIT (or just drop the socket if the server is gone)."""
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        where = f"{s.host}:{s.port}"
        context = ssl.create_default_context()
        try:
            smtp: smtplib.SMTP
            if s.security == "tls":
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s, context=context)
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
                if s.security == "starttls":
                    smtp.starttls(context=context)
            if s.username:
                smtp.login(s.username, s.password or "")
        except smtplib.SMTPAuthenticationError as err:
            raise DeliveryError(
                f"SMTP server {where} refused the login for {s.username!r} ({err.smtp_code}); "
                "check smtp.username and the password in the variable named by smtp.password_env"
            ) from err
        except ssl.SSLError as err:
            raise DeliveryError(f"TLS with SMTP server {where} failed: {err.reason}") from err
        except (smtplib.SMTPException, OSError) as err:
            raise DeliveryError(
                f"cannot connect to SMTP server {where}: {err} (check smtp.host, smtp.port, smtp.security)"
            ) from err
        return smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def send(self, message: EmailMessage, sender: str, recipient: str) -> None:
        """Send one message; SMTP refusals raise smtplib errors, connection loss DeliveryError."""
        if self._smtp is None:
            raise DeliveryError("SMTP outbox used outside its 'with' block")
        try:
            refused = self._smtp.send_message(message, from_addr=sender, to_addrs=[recipient])
        except smtplib.SMTPServerDisconnected as err:
            self._drop()
            raise DeliveryError(
                f"SMTP server {self.settings.host}:{self.settings.port} dropped the connection"
            ) from err
        except smtplib.SMTPException:
            raise  # a refusal of this message: the caller reports it (SMTPException is an OSError)
        except OSError as err:
            self._drop()
            raise DeliveryError(
                f"SMTP server {self.settings.host}:{self.settings.port} did not answer in time: {err}"
            ) from err
        if refused:
            code, reply = refused[recipient]
            raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})


class SendLedger:
    """Append-only record of the addresses an issue was delivered to (one JSON line each)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def delivered(self) -> set[str]:
        if not self.path.exists():
            return set()
        done = set()
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                done.add(json.loads(line)["to"].lower())
        return done

    def record(self, address: str, message_id: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"to": address, "message_id": message_id}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message with its envelope."""

    recipient: str
    message: EmailMessage


def _text(reply: str | bytes) -> str:
    return reply if isinstance(reply, str) else reply.decode(errors="replace")


def _smtp_reply(err: smtplib.SMTPException) -> str:
    """The server's reply code and text for a refusal, as the report shows it."""
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(err.recipients.values()))
        return f"{code} {_text(reply)}"
    if isinstance(err, smtplib.SMTPResponseException):
        return f"{err.smtp_code} {_text(err.smtp_error)}"
    return str(err)


def deliver(
    outgoing: Iterable[Outgoing],
    settings: SmtpSettings,
    sender: str,
    ledger: SendLedger,
    on_progress: Callable[[], None] = lambda: None,
) -> DeliveryReport:
    """Send every message not yet in the ledger; refusals are reported, never dropped silently.

    A refused recipient does not stop the run. A lost connection is retried once on a fresh
    connection; if that fails too, DeliveryError ends the run and the ledger keeps what was done.
    """
    report = DeliveryReport()
    done = ledger.delivered()
    outbox: SmtpOutbox | None = None
    try:
        for item in outgoing:
            if item.recipient.lower() in done:
                report.skipped.append(item.recipient)
                on_progress()
                continue
            for attempt in (1, 2):
                if outbox is None:
                    outbox = SmtpOutbox(settings)
                    outbox.open()
                try:
                    outbox.send(item.message, sender, item.recipient)
                except DeliveryError:
                    outbox = None
                    if attempt == 2:
                        raise
                    logger.warning("connection lost before %s; reconnecting once", item.recipient)
                    continue
                except smtplib.SMTPException as err:
                    report.refused[item.recipient] = _smtp_reply(err)
                    logger.warning(
                        "SMTP refused %s: %s", item.recipient, report.refused[item.recipient]
                    )
                else:
                    ledger.record(item.recipient, str(item.message["Message-ID"]))
                    report.sent.append(item.recipient)
                break
            on_progress()
    finally:
        if outbox is not None:
            outbox.close()
    return report


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
