"""One SMTP session, and whose fault each failed exchange is (RFC 5321 reply codes, RFC 3463
enhanced status codes), judged by the stage it failed at and its cause:

| stage          | reply                                   | verdict   | what happens                 |
|----------------|-----------------------------------------|-----------|------------------------------|
| any            | 4xx, 421, a timeout, a dropped link     | RETRY     | this message later (backoff) |
| rcpt           | 552 (RFC 5321 4.5.3.1.10: as 452)       | RETRY     | this message later           |
| data (after .) | no reply: stored or not, nobody knows   | UNCERTAIN | once more, after the others  |
| rcpt, data     | 5.1.x (the mailbox does not exist)      | BOUNCE    | fail it, mark the subscriber |
| rcpt           | any other 5xx                           | PERMANENT | fail this message only       |
| connect        | 5xx (554, 521: no service for us)       | FATAL     | stop the run, all pending    |
| tls            | a handshake that fails (certificate)    | FATAL     | stop the run                 |
| auth           | 5xx (530, 534, 535, 504 ...)            | FATAL     | stop the run                 |
| mail           | 5xx (the sender address: 5.1.7, 5.1.8)  | FATAL     | stop the run                 |
| rcpt, data     | 5.7.x (policy: relaying, rate, SPF)     | FATAL     | stop the run                 |
| data           | other 5xx (500 line too long, 552 or    | FATAL     | stop the run: the message    |
|                | 5.3.4 size, 5.6.x content, 554)         |           | itself is refused            |

A 4xx basic code is transient whatever enhanced code it carries (RFC 3463: the class digits
agree). Only a recipient's permanent refusal touches a subscriber; a fault of the sender, the
message or the server stops the run and leaves every untouched message pending.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

    from newsletter.config import SmtpSection

SERVICE_CLOSING = 421
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


class Verdict(StrEnum):
    """What to do about a failed exchange (the table in the module docstring)."""

    RETRY = "retry"
    UNCERTAIN = "uncertain"
    BOUNCE = "bounce"
    PERMANENT = "permanent"
    FATAL = "fatal"


@dataclass(frozen=True, slots=True)
class SmtpFailure(Exception):
    """An SMTP exchange that did not end in acceptance; `code` is None without a reply, and
    `uncertain` says the whole message went out before the reply was lost."""

    stage: str
    code: int | None
    text: str
    uncertain: bool = False

    def __str__(self) -> str:
        return f"{self.code} {self.text}" if self.code is not None else self.text

    @property
    def enhanced(self) -> tuple[str, str]:
        """The class and subject digits of the RFC 3463 code in the text ("5", "1"), if any."""
        found = _ENHANCED.match(self.text)
        return (found.group(1), found.group(2)) if found else ("", "")


def classify(failure: SmtpFailure) -> Verdict:
    """What to do about one failed exchange (the table in the module docstring)."""
    code, stage = failure.code, failure.stage
    if stage == "tls":  # a certificate that does not verify will not verify on retry either
        return Verdict.FATAL
    if code is None:
        return Verdict.UNCERTAIN if failure.uncertain else Verdict.RETRY
    if code < 500 or (stage == "rcpt" and code == 552):
        return Verdict.RETRY
    if stage in ("connect", "auth", "mail") or failure.enhanced == ("5", "7"):
        return Verdict.FATAL
    if failure.enhanced == ("5", "1"):
        return Verdict.BOUNCE
    return Verdict.PERMANENT if stage == "rcpt" else Verdict.FATAL


class ReplyLostError(smtplib.SMTPServerDisconnected):
    """The whole message went out, then the connection failed before the server answered."""


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
    try:
        return smtp.getreply()
    except smtplib.SMTPServerDisconnected as err:
        raise ReplyLostError(str(err)) from err


class _SMTP(smtplib.SMTP):
    """smtplib's session with two passes less per message: DATA without dot-stuffing, and
    MAIL/RCPT without parsing a plain address to quote it."""

    def data(self, msg: Any) -> tuple[int, bytes]:
        return _data_unstuffed(self, msg)

    def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        if not _PLAIN_ADDRESS.fullmatch(sender) or any(o.lower() == "smtputf8" for o in options):
            return super().mail(sender, options)
        self.putcmd("mail", f"FROM:<{sender}>{_option_list(self, options)}")
        return self.getreply()

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        if not _PLAIN_ADDRESS.fullmatch(recip):
            return super().rcpt(recip, options)
        self.putcmd("rcpt", f"TO:<{recip}>{_option_list(self, options)}")
        return self.getreply()


class _SMTP_SSL(_SMTP, smtplib.SMTP_SSL):
    """The same over implicit TLS (SMTP_SSL's socket, _SMTP's commands)."""


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
"""An ASCII dot-atom address: smtplib.quoteaddr would parse it only to give back <address>
(tests/test_delivery.py checks that against quoteaddr itself)."""


def _option_list(smtp: smtplib.SMTP, options: Sequence[str]) -> str:
    return " " + " ".join(options) if options and smtp.does_esmtp else ""


def _text(reply: str | bytes) -> str:
    return reply if isinstance(reply, str) else reply.decode(errors="replace")


class SmtpConnection:
    """One SMTP session: connect, secure (certificates verified), log in, send, quit."""

    def __init__(self, settings: SmtpSection, password: str | None = None) -> None:
        self.settings = settings
        self.password = password
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
                smtp.login(s.username, self.password or "")
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
        except ReplyLostError as err:
            self._drop()
            text = f"no reply after the whole message was sent: {err}"
            raise SmtpFailure("data", None, text, uncertain=True) from err
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
