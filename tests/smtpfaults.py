"""SMTP servers that misbehave on purpose, on 127.0.0.1: a scripted aiosmtpd handler and a raw
socket server for greetings aiosmtpd cannot be made to send."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter, defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesHeaderParser
from typing import Any

ACCEPT = "accept"
DROP = "drop"  # close the connection mid-DATA, message not stored
DROP_AFTER_STORE = "drop-after-store"  # store the message, then close without a reply
STALL = "stall"  # store nothing and say nothing for `stall_s`


@dataclass
class ScriptedHandler:
    """Replies from per-address scripts; each RCPT or DATA takes the script's next step.

    `rcpt[address]` and `data[address]` are lists of replies ("451 4.3.0 try later") or actions
    (ACCEPT, DROP, DROP_AFTER_STORE, STALL); when a script runs out the server accepts.
    """

    rcpt: dict[str, list[str]] = field(default_factory=dict)
    data: dict[str, list[str]] = field(default_factory=dict)
    mail: list[str] = field(default_factory=list)
    """Replies to MAIL FROM, one per transaction, before it accepts."""
    everyone: list[str] = field(default_factory=list)
    """DATA steps for every recipient, one per message, after their own script."""
    stall_s: float = 3.0
    stored: list[Any] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mail:
            return self.mail.pop(0)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.attempts[address] += 1
        script = self.rcpt.get(address)
        step = script.pop(0) if script else ACCEPT
        if step != ACCEPT:
            return step
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        address = envelope.rcpt_tos[0]
        script = self.data.get(address)
        step = script.pop(0) if script else self.everyone.pop(0) if self.everyone else ACCEPT
        if step == ACCEPT:
            self.stored.append(envelope)
            return "250 Message accepted for delivery"
        if step == DROP_AFTER_STORE:
            self.stored.append(envelope)
            server.transport.close()
            return "250 never heard"
        if step == DROP:
            server.transport.close()
            return "250 never heard"
        if step == STALL:
            await asyncio.sleep(self.stall_s)
            return "451 4.3.0 too late"
        return step


class GreetingServer:
    """A TCP server on 127.0.0.1 that greets every connection with `banner` and hangs up."""

    def __init__(self, banner: str) -> None:
        self.banner = banner.encode() + b"\r\n"
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen()
        self.port = int(self._socket.getsockname()[1])
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._socket.accept()
            except OSError:
                return
            with closing(client):
                self.connections += 1
                client.sendall(self.banner)

    def __enter__(self) -> GreetingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # close() alone does not wake a thread blocked in accept() on Linux; shutdown() does.
        self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "the greeting server did not stop"


class CountingHandler:
    """Stores nothing, and counts each message it accepts by Message-ID."""

    def __init__(self) -> None:
        self.ids: Counter[str] = Counter()
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        head = envelope.original_content.split(b"\r\n\r\n", 1)[0]
        message = BytesHeaderParser(policy=policy.default).parsebytes(head)
        with self.lock:
            self.ids[str(message["Message-ID"])] += 1
        return "250 OK"

    @property
    def stored(self) -> int:
        with self.lock:
            return sum(self.ids.values())
