"""End to end: `newsletter run` delivers one well-formed message per subscriber over real SMTP."""

from __future__ import annotations

import csv
import email
import mailbox
import re
from email import policy
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime

import pytest

from newsletter.app.send import send_issue
from newsletter.cli import main
from newsletter.config import BUILTIN_SUBSCRIBERS, Secrets, load_config

from .conftest import SmtpEndpoint, newsletter_command, now_utc

CHARTS = 5
SECRETS = Secrets(unsubscribe_key=b"test-secret-test-secret")
REQUIRED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)


def sample_addresses() -> list[str]:
    with BUILTIN_SUBSCRIBERS.open(newline="") as handle:
        return [row["email"] for row in csv.DictReader(handle)]


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def check_message(message: EmailMessage, recipient: str, charts: int = CHARTS) -> None:
    """The structure and headers the issue requires, checked on the parsed message."""
    for name in REQUIRED_HEADERS:
        assert message[name], f"missing {name}"
        assert len(message.get_all(name)) == 1, f"duplicate {name}"
    assert parseaddr(str(message["To"]))[1] == recipient
    assert parsedate_to_datetime(str(message["Date"])).tzinfo is not None
    assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", str(message["Message-ID"]))
    assert re.fullmatch(r".+ <[a-z0-9.-]+>", str(message["List-Id"]))
    unsubscribe = str(message["List-Unsubscribe"])
    assert re.fullmatch(r"<https://[^>]+/u/[A-Za-z0-9_.-]+>, <mailto:[^>]+>", unsubscribe)
    assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"

    assert message.get_content_type() == "multipart/alternative"
    text_part, related = message.get_payload()
    assert text_part.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html_part, *images = related.get_payload()
    assert html_part.get_content_type() == "text/html"
    assert len(images) == charts
    html = html_part.get_content()
    cids = set(re.findall(r'src="cid:([^"]+)"', html))
    parts = {str(image["Content-ID"]).strip("<>"): image for image in images}
    assert cids == set(parts), "every cid: must resolve to an image part and every image be used"
    for image in parts.values():
        assert image.get_content_type() == "image/png"
        assert image.get_content().startswith(b"\x89PNG\r\n\x1a\n")
    https_link = unsubscribe.split(">", maxsplit=1)[0].lstrip("<")
    assert https_link in html
    assert https_link in text_part.get_content()


def test_run_delivers_one_message_per_subscriber_to_a_real_smtp_server(
    fast_cli, write_config, smtp_server: SmtpEndpoint, capsys, tmp_path
):
    config = write_config(smtp={"host": smtp_server.host, "port": smtp_server.port})
    env_secret = {"NEWSLETTER_UNSUBSCRIBE_SECRET": "test-secret-test-secret"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env_secret.items():
            mp.setenv(key, value)
        code = main(["run", "--config", str(config), "--as-of", "2024-07-16", "--quiet"])
    assert code == 0, capsys.readouterr().err
    addresses = sample_addresses()
    received = [env.rcpt_tos for env in smtp_server.envelopes]
    assert sorted(r for rcpts in received for r in rcpts) == sorted(addresses)
    assert all(len(rcpts) == 1 for rcpts in received)
    ids = set()
    for envelope in smtp_server.envelopes:
        assert envelope.mail_from == "digest@example.com"
        message = parse(envelope.original_content)
        check_message(message, envelope.rcpt_tos[0])
        ids.add(str(message["Message-ID"]))
        assert "Record rotation" in str(message["Subject"])
    assert len(ids) == len(addresses)
    out = capsys.readouterr().out
    assert "Issue 2024-07-16" in out
    assert "Sent:    5 now to the SMTP server 127.0.0.1" in out
    assert "Ledger:  5 sent" in out
    assert f"Archive: {tmp_path / 'var' / 'archive' / '2024-07-16'} (" in out


def test_run_again_sends_nothing_twice(
    fast_cli, write_config, smtp_server: SmtpEndpoint, monkeypatch
):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "test-secret-test-secret")
    config = write_config(smtp={"host": smtp_server.host, "port": smtp_server.port})
    argv = ["run", "--config", str(config), "--as-of", "2024-07-16", "--quiet"]
    assert main(argv) == 0
    assert main(argv) == 0
    assert len(smtp_server.envelopes) == len(sample_addresses())


@pytest.mark.smtp_refuse({"grace.hopper@example.org": "550 5.1.1 No such user"})
def test_a_bounced_address_is_reported_and_marked(
    fast_cli, write_config, smtp_server, monkeypatch, capsys, build_day
):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "test-secret-test-secret")
    config = write_config(smtp={"host": smtp_server.host, "port": smtp_server.port})
    argv = ["run", "--config", str(config), "--as-of", "2024-07-16", "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Not delivered: 1 message(s), bounced: 550 5.1.1 No such user" in err
    assert "grace.hopper" not in err  # one line per reason; --verbose names each address
    assert len(smtp_server.envelopes) == 4
    # 5.1.1 is a bad mailbox: the subscriber is marked bounced and not mailed again.
    assert main(["subscribers", "list", "--config", str(config), "--status", "bounced"]) == 0
    assert capsys.readouterr().out == "grace.hopper@example.org\tGrace Hopper\tbounced\n"
    smtp_server.handler.refuse.clear()
    again = send_issue(load_config(config), build_day("2024-07-16"), secrets=SECRETS, clock=now_utc)
    assert not again.complete  # the issue still has a bounced message
    assert len(smtp_server.envelopes) == 4


def test_default_run_delivers_to_the_builtin_capture_server(
    write_config, monkeypatch, tmp_path, capsys
):
    monkeypatch.delenv("NEWSLETTER_UNSUBSCRIBE_SECRET", raising=False)
    config = write_config()
    assert main(["run", "--config", str(config), "--quiet"]) == 0
    outbox = mailbox.Maildir(tmp_path / "var" / "outbox", create=False)
    messages = [parse(outbox.get_bytes(key)) for key in outbox.iterkeys()]
    assert len(messages) == len(sample_addresses())
    for message in messages:
        check_message(message, str(message["X-Envelope-To"]), charts=CHARTS - 1)  # no sectors
    issue = tmp_path / "var" / "issues" / "2025-09-26"
    for name in (
        "email.html",
        "preview.html",
        "email.txt",
        "stats.json",
        "ytd.png",
        "spread_distribution.png",
        "relative_strength.png",
        "megacaps.png",
    ):
        assert (issue / name).is_file(), name
    preview = (issue / "preview.html").read_text()
    assert 'src="ytd.png"' in preview
    assert not (issue / "sectors.png").exists(), "no sector closes on 2025-09-26: no sector chart"
    assert "cid:" not in preview
    out = capsys.readouterr().out
    assert "Issue 2025-09-26" in out
    assert "built-in capture server" in out


def test_smtp_server_that_is_down_gives_one_clear_line(fast_cli, write_config, capsys, monkeypatch):
    from newsletter.delivery.capture import free_loopback_port  # noqa: PLC0415

    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "test-secret-test-secret")
    port = free_loopback_port()
    config = write_config(smtp={"host": "127.0.0.1", "port": port, "timeout_s": 5})
    code = main(["run", "--config", str(config), "--as-of", "2024-07-16", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    lines = [
        line for line in err.strip().splitlines() if not line.strip().startswith("Lint warning")
    ]
    assert lines == [lines[0]]  # one line for the failure (the build's lint warnings aside)
    assert lines[0].startswith(
        f"Error: SMTP server 127.0.0.1:{port} is unreachable (cannot connect: "
    )
    assert lines[0].endswith(
        "nothing was sent. Check smtp.host, smtp.port and smtp.security, then run the same command"
    )


def test_send_test_copy_is_marked_and_not_recorded(
    fast_cli, write_config, smtp_server, monkeypatch, capsys, build_day
):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "test-secret-test-secret")
    config = write_config(smtp={"host": smtp_server.host, "port": smtp_server.port})
    base = ["send", "--config", str(config), "--as-of", "2024-07-16", "--quiet"]
    assert main([*base, "--test", "editor@example.net"]) == 0
    assert "one [TEST] copy to editor@example.net" in capsys.readouterr().out
    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == ["editor@example.net"]
    assert str(parse(envelope.original_content)["Subject"]).startswith("[TEST] Record rotation")
    result = send_issue(
        load_config(config), build_day("2024-07-16"), secrets=SECRETS, clock=now_utc
    )
    assert result.report.sent == len(sample_addresses())  # the real send still goes to all five
    assert len(smtp_server.envelopes) == 1 + len(sample_addresses())


def test_dry_run_composes_what_a_send_would_send_and_sends_nothing(
    fast_cli, write_config, smtp_server, monkeypatch, capsys, build_day
):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "test-secret-test-secret")
    config = write_config(smtp={"host": smtp_server.host, "port": smtp_server.port})
    dry = ["send", "--config", str(config), "--as-of", "2024-07-16", "--dry-run"]
    assert main(dry) == 0
    out = capsys.readouterr().out
    assert re.search(r"Dry run: 5 messages composed, \d+ KB in all; 0 readers skipped", out)
    assert smtp_server.envelopes == []
    secrets = Secrets(unsubscribe_key=b"test-secret-test-secret")
    send_issue(load_config(config), build_day("2024-07-16"), secrets=secrets, clock=now_utc)
    assert main(dry) == 0
    out = capsys.readouterr().out
    assert "Dry run: 0 messages composed, 0 KB in all; 5 readers skipped" in out
    assert len(smtp_server.envelopes) == 5


@pytest.mark.smtp_refuse({"alan.turing@example.com": "451 4.3.0 try again later"})
def test_resume_finishes_the_interrupted_issue(
    fast_cli, write_config, smtp_server, monkeypatch, capsys
):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "test-secret-test-secret")
    config = write_config(
        smtp={"host": smtp_server.host, "port": smtp_server.port},
        delivery={"max_attempts": 1, "retry_backoff_s": 0},
    )
    assert main(["send", "--config", str(config), "--as-of", "2024-07-16", "--quiet"]) == 1
    assert "Ledger:  1 deferred, 4 sent" in capsys.readouterr().out
    smtp_server.handler.refuse.clear()
    assert main(["send", "--config", str(config), "--resume", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Issue 2024-07-16" in out
    assert "Ledger:  5 sent" in out
    assert main(["send", "--config", str(config), "--resume"]) == 0
    assert "Nothing to resume" in capsys.readouterr().out


def test_hosted_images_make_a_small_message_that_links_its_charts(
    fast_cli, write_config, smtp_server, monkeypatch, capsys
):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "test-secret-test-secret")
    config = write_config(
        smtp={"host": smtp_server.host, "port": smtp_server.port}, newsletter={"images": "hosted"}
    )
    assert main(["run", "--config", str(config), "--as-of", "2024-07-16", "--quiet"]) == 0
    assert "Lint error" not in capsys.readouterr().err
    envelope = smtp_server.envelopes[0]
    message = parse(envelope.original_content)
    assert [part.get_content_type() for part in message.walk()] == [
        "multipart/alternative",
        "text/plain",
        "multipart/related",
        "text/html",
    ]
    sources = re.findall(r'<img[^>]+src="([^"]+)"', message.get_body(("html",)).get_content())
    assert len(sources) == 5
    assert all(src.startswith("https://digest.example.com/issues/2024-07-16/") for src in sources)
    assert len(envelope.original_content) < 80_000
    # The send archived the charts where those links point (served by `newsletter serve`).
    archive = load_config(config).archive_dir
    for src in sources:
        path = archive / src.removeprefix("https://digest.example.com/issues/")
        assert path.read_bytes().startswith(b"\x89PNG"), src


@pytest.mark.slow
def test_resume_after_a_send_killed_during_its_build(
    write_config, smtp_server, monkeypatch, capsys
):
    import os  # noqa: PLC0415
    import sqlite3  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import time  # noqa: PLC0415

    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "test-secret-test-secret")
    config = write_config(smtp={"host": smtp_server.host, "port": smtp_server.port})
    database = load_config(config).database_url.removeprefix("sqlite:///")
    send = subprocess.Popen(
        newsletter_command("send", "--config", str(config), "--as-of", "2024-07-16", "--quiet"),
        env=os.environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    begun = []
    while not begun and send.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        try:
            with sqlite3.connect(database) as db:
                begun = db.execute("SELECT as_of FROM issues").fetchall()
        except sqlite3.Error:
            continue
    send.kill()  # killed while it builds: the issue is known, its ledger not yet filled
    send.wait()
    assert begun == [("2024-07-16",)]
    assert smtp_server.envelopes == []
    assert main(["send", "--config", str(config), "--resume", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Issue 2024-07-16" in out
    assert "Ledger:  5 sent" in out
