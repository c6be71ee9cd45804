"""The built-in SMTP server on 127.0.0.1 that files what it receives in a Maildir."""

from __future__ import annotations

import asyncio
import errno
import mailbox
import socket
from contextlib import closing
from typing import TYPE_CHECKING, Any, Self

from aiosmtpd.controller import Controller

from newsletter.config import SmtpSection

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

LOOPBACK = "127.0.0.1"


class _MaildirHandler:
    """aiosmtpd handler that files every accepted message, byte for byte, into a Maildir,
    under the lines a delivering MTA adds: Return-Path (the envelope sender, MAIL FROM) and
    X-Envelope-To (the envelope recipients)."""

    def __init__(self, directory: Path) -> None:
        directory.parent.mkdir(parents=True, exist_ok=True)  # var/ may not exist yet
        self.maildir = mailbox.Maildir(directory, create=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        trace = (
            f"Return-Path: <{envelope.mail_from}>\r\n"
            f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        )
        try:
            self.maildir.add(trace.encode() + envelope.original_content)
        except OSError as err:  # this machine's fault, and passing: a transient reply
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                return "452 4.3.1 Insufficient system storage"
            return f"451 4.3.0 Local error in processing ({err.strerror})"
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

    def settings(self, timeout_s: float) -> SmtpSection:
        """Where to reach this server (plain SMTP on loopback, no login)."""
        return SmtpSection(host=LOOPBACK, port=self.port, security="none", timeout_s=timeout_s)

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
