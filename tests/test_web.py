"""The public site's server (Starlette under uvicorn) over real sockets: what a probe of the old
http.server found, each kept fixed. A malformed request gets a 400 and no traceback; a
connection that sends nothing, or its request a byte at a time, is closed; the access log never
shows a token; every answer is complete (security headers included), HEAD included; and
`newsletter serve` runs in one process or several and stops cleanly on a signal."""

from __future__ import annotations

import http.client
import logging
import os
import re
import signal
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from newsletter.app.audience import add_subscriber, subscribers
from newsletter.app.site import Site
from newsletter.cli import main
from newsletter.config import load_config
from newsletter.mail.unsubscribe import make_token
from newsletter.web.site import make_site_app
from tests.conftest import http_request, http_serving, now_utc
from tests.webserve import serve_process

KEY = "web-test-key-web-test-key-web-te"
LIST_ID = "rotation-digest.example.com"
ADA = "ada@example.com"
TOKEN = make_token(KEY.encode(), LIST_ID, ADA)
SOCKET_TIMEOUT_S = 30
"""Well past the server's 10 s request-read deadline and 5 s keep-alive: a connection the
server has not closed by then fails the test."""


@pytest.fixture
def config_path(write_config):
    path = write_config(subscribers={"file": None})
    add_subscriber(load_config(path), ADA, "Ada", now_utc())
    return path


@pytest.fixture
def site(config_path):
    with http_serving(make_site_app(Site(load_config(config_path), KEY.encode()), now_utc)) as url:
        yield url


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=SOCKET_TIMEOUT_S)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a timeout fails the test)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def exchange(url: str, request: bytes) -> http.client.HTTPResponse:
    """Send the raw `request` and parse the answer."""
    sock = connect(url)
    sock.sendall(request)
    reply = http.client.HTTPResponse(sock)
    reply.begin()
    reply.read()
    sock.close()
    return reply


def test_a_bad_content_length_gets_400_and_no_traceback(site, caplog):
    caplog.set_level(logging.DEBUG)
    request = f"POST /u/{TOKEN} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n"
    reply = exchange(site, request.encode())
    assert reply.status == 400
    assert not [record for record in caplog.records if record.exc_info]
    assert "Traceback" not in caplog.text
    assert http_request(f"{site}/").status == 200  # the server is still there


@pytest.mark.slow
def test_silent_trickling_and_idle_connections_are_closed(site):
    """A connection that never sends, one whose request head never ends, and one that idles
    after its answer: the server closes each (the first two after its request-read deadline,
    the last after its keep-alive); one still open after SOCKET_TIMEOUT_S fails the test."""
    silent, trickling, idle = connect(site), connect(site), connect(site)
    trickling.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    idle.sendall(b"GET /feed.atom HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert read_until_closed(silent) == b""
    assert read_until_closed(trickling) == b""
    assert read_until_closed(idle).startswith(b"HTTP/1.1 200 ")
    for sock in (silent, trickling, idle):
        sock.close()


def test_the_access_log_shows_token_paths_redacted(site, caplog):
    caplog.set_level(logging.INFO)
    assert http_request(f"{site}/u/{TOKEN}").status == 200
    assert http_request(f"{site}/u/{TOKEN}?utm=x", data=b"List-Unsubscribe=One-Click").status == 200
    assert http_request(f"{site}/confirm/{TOKEN}").status == 400  # not a confirmation token
    assert http_request(f"{site}/feed.atom").status == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "newsletter.web.http"]
    assert [re.sub(r" [0-9.]+ ms$", "", line) for line in lines] == [
        '127.0.0.1 "GET /u/<redacted>" 200',
        '127.0.0.1 "POST /u/<redacted>" 200',
        '127.0.0.1 "GET /confirm/<redacted>" 400',
        '127.0.0.1 "GET /feed.atom" 200',
    ]
    for part in TOKEN.split("."):
        assert part not in caplog.text


NOT_FRAMED = (
    "default-src 'none'; img-src 'self' https: data:; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'"
)
"""The public pages' policy: the old server's (no script, no outside loads), and no other site
may frame a page or receive its form."""


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "content_type", "cache", "token_page"),
    [
        ("GET", "/", None, 200, "text/html; charset=utf-8", "no-cache", False),
        ("GET", "/feed.atom", None, 200, "application/atom+xml", "no-cache", False),
        ("GET", f"/u/{TOKEN}", None, 200, "text/html; charset=utf-8", "no-store", True),
        ("GET", "/u/not-a-token", None, 400, "text/html; charset=utf-8", "no-store", True),
        (
            "POST",
            f"/u/{TOKEN}",
            b"List-Unsubscribe=One-Click",
            200,
            "text/html; charset=utf-8",
            "no-store",
            True,
        ),
        ("GET", "/issues/2024-07-19/", None, 404, "text/html; charset=utf-8", "no-cache", False),
        ("GET", "/signup", None, 200, "text/html; charset=utf-8", "no-cache", False),
        ("POST", "/signup", b"email=bad", 400, "text/html; charset=utf-8", "no-store", True),
        ("GET", "/confirm/1.2.AAAA", None, 400, "text/html; charset=utf-8", "no-store", True),
        ("POST", "/confirm/1.2.AAAA", b"", 400, "text/html; charset=utf-8", "no-store", True),
        ("PUT", "/", b"", 405, "text/html; charset=utf-8", "no-cache", False),
    ],
)
def test_every_answer_is_complete_with_its_security_headers(
    site, method, path, body, status, content_type, cache, token_page
):
    connection = http.client.HTTPConnection("127.0.0.1", urlsplit(site).port, timeout=30)
    connection.request(method, path, body=body)
    reply = connection.getresponse()
    data = reply.read()
    connection.close()
    assert reply.status == status
    assert reply.getheader("Content-Type") == content_type
    assert reply.getheader("Content-Length") == str(len(data))
    assert reply.getheader("X-Content-Type-Options") == "nosniff"
    assert reply.getheader("Cache-Control") == cache
    assert reply.getheader("Content-Security-Policy") == NOT_FRAMED
    assert (reply.getheader("X-Robots-Tag") == "noindex") is token_page
    assert (reply.getheader("Referrer-Policy") == "no-referrer") is token_page
    if status == 405:
        assert set(reply.getheader("Allow").split(", ")) == {"GET", "HEAD"}


@pytest.mark.parametrize("path", ["/", "/feed.atom", f"/u/{TOKEN}", "/nothing"])
def test_head_answers_as_get_does_without_the_body(site, path):
    connection = http.client.HTTPConnection("127.0.0.1", urlsplit(site).port, timeout=30)
    connection.request("GET", path)
    got = connection.getresponse()
    body = got.read()
    connection.request("HEAD", path)  # the same connection: HEAD must leave it usable
    head = connection.getresponse()
    assert head.read() == b""
    connection.close()
    assert head.status == got.status
    assert head.getheader("Content-Length") == str(len(body)) != "0"
    assert head.getheader("Content-Security-Policy") == got.getheader("Content-Security-Policy")


@pytest.mark.slow
def test_serve_in_two_worker_processes_answers_and_stops_on_sigterm(config_path):
    env = {**os.environ, "NEWSLETTER_UNSUBSCRIBE_SECRET": KEY}
    with serve_process(config_path, "--workers", "2", env=env) as served:
        replies = [http_request(f"{served.url}{path}") for path in ("/", "/feed.atom") * 4]
        workers = _children(served.process.pid)
        served.process.send_signal(signal.SIGTERM)
    assert [reply.status for reply in replies] == [200] * 8
    assert len(workers) == 2, workers
    assert served.process.returncode == 0, served.err
    assert "in 2 worker processes" in served.out
    assert served.out.endswith("Stopped.\n")
    assert "Traceback" not in served.err
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]  # the workers are gone


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` and that run spawned workers (not the resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in command:
            found.append(int(entry.name))
    return found


def test_serve_verbose_logs_one_redacted_line_per_request_and_a_bad_request_in_one_line(
    config_path,
):
    env = {**os.environ, "NEWSLETTER_UNSUBSCRIBE_SECRET": KEY}
    with serve_process(config_path, "--verbose", env=env) as served:
        confirm = http_request(f"{served.url}/u/{TOKEN}")
        bad = exchange(served.url, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        done = http_request(f"{served.url}/u/{TOKEN}", data=b"List-Unsubscribe=One-Click")
    assert (confirm.status, bad.status, done.status) == (200, 400, 200)
    assert served.process.returncode == 0, served.err
    assert served.out.endswith("Stopped.\n")
    assert "Traceback" not in served.err
    access = [line for line in served.err.splitlines() if line.startswith("INFO newsletter.web")]
    assert [re.sub(r" [0-9.]+ ms$", "", line) for line in access] == [
        'INFO newsletter.web.http: 127.0.0.1 "GET /u/<redacted>" 200',
        'INFO newsletter.web.http: 127.0.0.1 "POST /u/<redacted>" 200',
    ]
    assert "WARNING uvicorn.error: Invalid HTTP request received." in served.err
    assert TOKEN.split(".")[0] not in served.err
    assert (
        dict((email, status) for email, _, status in subscribers(load_config(config_path)))[ADA]
        == "unsubscribed"
    )


@pytest.mark.parametrize("workers", ["0", "-1", "two", "1.5"])
def test_workers_must_be_a_whole_number_of_at_least_one(workers, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--workers", workers])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"newsletter serve: error: argument --workers: must be a whole number of at least 1, "
        f"got '{workers}'"
    )
