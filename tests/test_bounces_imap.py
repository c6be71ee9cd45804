"""The bounce mailbox over IMAP, against a real IMAP server on 127.0.0.1: pymap (pure Python,
its in-memory backend), with a certificate from a throwaway CA (trustme). pymap speaks
STARTTLS; implicit TLS (port 993's way) is tested through a TLS front on its own port that
relays the bytes to pymap, as stunnel or a load balancer would. Messages are put there with
APPEND, as a delivery agent would, and read with their flags left alone."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from newsletter.cli import main
from newsletter.config import Secrets
from newsletter.delivery.capture import free_loopback_port
from newsletter.models import InboundKind
from tests import bouncemail

pytest.importorskip("pymap", reason="pymap (the dev extra) runs the IMAP server")

USER, PASSWORD = "bounces", "imap-test-password-9f4c"
ADA, GRACE = "ada.lovelace@example.com", "grace.hopper@example.org"
PYMAP = "import sys; from pymap.main import main; sys.exit(main())"


@dataclass
class ImapServer:
    port: int
    ca_file: Path
    client_context: ssl.SSLContext

    def append(self, data: bytes) -> None:
        """Deliver `data` to the INBOX, as a delivery agent would."""
        with imaplib.IMAP4("127.0.0.1", self.port) as client:  # logs out at the end
            client.starttls(ssl_context=self.client_context)
            client.login(USER, PASSWORD)
            client.append("INBOX", None, None, data)

    def flags(self) -> list[bytes]:
        with imaplib.IMAP4("127.0.0.1", self.port) as client:
            client.starttls(ssl_context=self.client_context)
            client.login(USER, PASSWORD)
            client.select("INBOX", readonly=True)
            _, data = client.uid("FETCH", "1:*", "(FLAGS)")
        return [item for item in data if isinstance(item, bytes)]


def _wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"pymap exited: {process.stderr.read().decode() if process.stderr else ''}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("pymap did not start listening within 20 s")


@pytest.fixture
def imap_server(tmp_path) -> Iterator[ImapServer]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    ca.cert_pem.write_to_path(ca_file)
    port = free_loopback_port()
    argv = ["--host", "127.0.0.1", "--port", str(port), "--cert", str(cert_file)]
    argv += ["--key", str(key_file), "dict", "--demo-user", USER, "--demo-password", PASSWORD]
    process = subprocess.Popen(
        [sys.executable, "-c", PYMAP, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_for(port, process)
        yield ImapServer(port, ca_file, ssl.create_default_context(cafile=str(ca_file)))
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()


@contextlib.contextmanager
def tls_front(target: int, tmp_path: Path) -> Iterator[int]:
    """Implicit TLS on a port of its own, relaying every connection to pymap's plain port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    loop = asyncio.new_event_loop()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    started = loop.run_until_complete(asyncio.start_server(relay, "127.0.0.1", 0, ssl=context))
    port = started.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        started.close()
        loop.close()


def _imap(server: ImapServer, port: int, security: str, **more: object) -> dict[str, object]:
    settings = {
        "maildir": None,
        "imap_host": "127.0.0.1",
        "imap_port": port,
        "imap_security": security,
        "imap_username": USER,
        "imap_password_env": "BOUNCES_IMAP_PASSWORD",
        "imap_ca_file": str(server.ca_file),
        "imap_timeout_s": 10,
    }
    return settings | more


def _read_twice(project: bouncemail.Project, server: ImapServer) -> None:
    server.append(bouncemail.fixture("postfix-hard-5.1.1.eml", project.token(GRACE)))
    server.append(bouncemail.fixture("mailto-unsubscribe.eml"))
    report = project.process()
    assert report.counts == {InboundKind.HARD: 1, InboundKind.UNSUBSCRIBE: 1}
    assert report.mailbox.startswith(f"IMAP {USER}@127.0.0.1:")
    statuses = project.statuses()
    assert (statuses[GRACE], statuses[ADA]) == ("bounced", "unsubscribed")
    again = project.process()
    assert (again.counts, again.earlier) == ({}, 2)
    flags = server.flags()
    assert len(flags) == 2 and all(b"\\Seen" not in each for each in flags)  # left unread


SECRETS = Secrets(unsubscribe_key=bouncemail.KEY, imap_password=PASSWORD)


def test_starttls_reads_each_message_once_and_leaves_it_unread(imap_server, write_config, tmp_path):
    settings = _imap(imap_server, imap_server.port, "starttls")
    project = bouncemail.make_project(write_config, tmp_path / "unused", None, **settings)
    project.secrets = SECRETS
    _read_twice(project, imap_server)


def test_implicit_tls_reads_the_same_way(imap_server, write_config, tmp_path):
    with tls_front(imap_server.port, tmp_path) as port:
        settings = _imap(imap_server, port, "tls")
        project = bouncemail.make_project(write_config, tmp_path / "unused", None, **settings)
        project.secrets = SECRETS
        _read_twice(project, imap_server)


@pytest.mark.parametrize(
    ("password", "ca", "expected"),
    [
        (
            "not-the-password",
            True,
            "Error: the IMAP server 127.0.0.1:{port} refused the login of bounces (",
        ),
        (
            PASSWORD,
            False,
            "Error: the IMAP server 127.0.0.1:{port} (bounces.imap_host) has a TLS certificate "
            "that does not verify (",
        ),
    ],
    ids=["wrong-password", "unverified-certificate"],
)
def test_a_refused_login_or_certificate_is_one_line_without_the_password(
    imap_server, write_config, monkeypatch, capsys, password, ca, expected
):
    monkeypatch.setenv("BOUNCES_IMAP_PASSWORD", password)
    settings = _imap(imap_server, imap_server.port, "starttls")
    if not ca:
        settings["imap_ca_file"] = None
    path = write_config(bounces=settings)
    assert main(["bounces", "--config", str(path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(expected.format(port=imap_server.port)), err
    assert password not in err and PASSWORD not in err
