"""One SMTP session, and what each failed exchange means (RFC 5321 reply codes, RFC 3463
enhanced status codes):
- retry later: 4xx, 421, 552 at RCPT (RFC 5321 section 4.5.3.1.10), timeouts, dropped connections;
- permanent: other 5xx; with 5.1.x (bad mailbox) the subscriber is also marked bounced;
- stop the run and alert: AUTH failures (530/535), 5.7.x policy blocks, 554 at the greeting,
  and a TLS handshake that fails (an unverifiable certificate).
"""

from __future__ import annotations

import re
import smtplib
import ssl
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from types import TracebackType

    from newsletter.config import SmtpSection

SERVICE_CLOSING = 421
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


class Verdict(StrEnum):
    """What to do about a failed exchange."""

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
