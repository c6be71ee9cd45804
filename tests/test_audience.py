"""Subscribers in the database, the CLI around them, and the one-click unsubscribe endpoint."""

from __future__ import annotations

import csv
import re

import pytest

from newsletter.app.audience import add_subscriber, subscribers
from newsletter.app.site import Site
from newsletter.cli import main
from newsletter.config import load_config
from newsletter.mail.unsubscribe import make_token
from newsletter.web.site import make_site_app
from tests.conftest import both_databases, http_request, http_serving
from tests.conftest import now_utc as now

KEY = b"unsubscribe-test-key-unsubscribe"
LIST_ID = "rotation-digest.example.com"


@pytest.fixture
def config_path(write_config, database_url):
    return write_config(subscribers={"file": None}, database={"url": database_url})


def cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@both_databases
def test_import_reports_bad_rows_and_never_reactivates(config_path, tmp_path, capsys):
    csv_file = tmp_path / "list.csv"
    csv_file.write_text(
        "email,name\nada@example.com,Ada\nbad-address,Bad\nbob@example.org,Bob\nADA@example.com,Dup\n"
    )
    code, out, err = cli(
        capsys, "subscribers", "import", str(csv_file), "--config", str(config_path)
    )
    assert code == 1
    assert err.startswith(f"{csv_file}: line 3: 'bad-address' is not a valid email address")
    assert out == (
        f"{csv_file}: 2 added, 0 renamed, 0 unchanged, 0 marked as left (their row says so), "
        "0 left earlier and stay so, 1 duplicate rows, 1 bad rows\n"
    )
    assert cli(capsys, "subscribers", "remove", "ada@example.com", "--config", str(config_path))[
        1
    ] == ("ada@example.com: unsubscribed\n")
    csv_file.write_text("email,name\nada@example.com,Ada Again\ncarol@example.com,Carol\n")
    code, out, _ = cli(capsys, "subscribers", "import", str(csv_file), "--config", str(config_path))
    assert code == 0
    assert "1 added" in out and "1 left earlier and stay so" in out
    assert cli(capsys, "subscribers", "add", "ADA@example.com", "--config", str(config_path))[
        1
    ] == (
        "ADA@example.com unsubscribed or bounced earlier and stays so (`--resubscribe` if they "
        "asked to come back)\n"
    )
    _, listing, _ = cli(capsys, "subscribers", "list", "--config", str(config_path))
    assert listing.splitlines() == [
        "ada@example.com\tAda\tunsubscribed",
        "bob@example.org\tBob\tactive",
        "carol@example.com\tCarol\tactive",
    ]
    exported = tmp_path / "out.csv"
    assert cli(capsys, "subscribers", "export", str(exported), "--config", str(config_path))[0] == 0
    rows = list(csv.reader(exported.read_text().splitlines()))
    assert rows[0] == [
        "email",
        "name",
        "status",
        "joined_at",
        "joined_via",
        "source",
        "confirmed_at",
    ]
    assert [row[:3] for row in rows[1:]] == [
        ["ada@example.com", "Ada", "unsubscribed"],
        ["bob@example.org", "Bob", "active"],
        ["carol@example.com", "Carol", "active"],
    ]
    # the consent record: when (ISO 8601 UTC), how and from where each joined; none confirmed
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row[3]) for row in rows[1:])
    assert [row[4:] for row in rows[1:]] == [["import", str(csv_file), ""]] * 3


def test_export_then_import_into_a_fresh_database_keeps_every_status(
    write_config, tmp_path, capsys
):
    old = write_config(subscribers={"file": None})
    rows = "email,name\nada@example.com,Ada\nbob@example.org,Bob\ncarol@example.com,Carol\n"
    (tmp_path / "list.csv").write_text(rows)
    assert (
        cli(capsys, "subscribers", "import", str(tmp_path / "list.csv"), "--config", str(old))[0]
        == 0
    )
    cli(capsys, "subscribers", "remove", "ada@example.com", "--config", str(old))
    from newsletter.app.wiring import database  # noqa: PLC0415
    from newsletter.db.audience import set_subscriber_status  # noqa: PLC0415
    from newsletter.models import SubscriberStatus  # noqa: PLC0415

    set_subscriber_status(
        database(load_config(old)), "bob@example.org", SubscriberStatus.BOUNCED, now()
    )
    exported = tmp_path / "export.csv"
    assert cli(capsys, "subscribers", "export", str(exported), "--config", str(old))[0] == 0
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    fresh = fresh_dir / "config.yaml"
    fresh.write_text(f"paths:\n  var_dir: {fresh_dir / 'var'}\nsubscribers:\n  file: null\n")
    code, out, _ = cli(capsys, "subscribers", "import", str(exported), "--config", str(fresh))
    assert (code, out.split(": ", 1)[1].split(",")[0]) == (0, "3 added")
    expected = {
        "ada@example.com": "unsubscribed",
        "bob@example.org": "bounced",
        "carol@example.com": "active",
    }
    assert {e: str(s) for e, _, s in subscribers(load_config(fresh))} == expected
    # the same export into the old database changes nobody; into one where Ada is still
    # active, it marks her gone (her row says she left), and never brings Bob back
    assert (
        "3 unchanged"
        in cli(capsys, "subscribers", "import", str(exported), "--config", str(old))[1]
    )
    other = write_config(subscribers={"file": None}, paths={"var_dir": str(tmp_path / "v3")})
    (tmp_path / "v3.csv").write_text("email,name\nada@example.com,Ada\n")
    cli(capsys, "subscribers", "import", str(tmp_path / "v3.csv"), "--config", str(other))
    _, out, _ = cli(capsys, "subscribers", "import", str(exported), "--config", str(other))
    assert "1 marked as left (their row says so)" in out
    assert status_of(load_config(other), "ada@example.com") == "unsubscribed"
    _, shown, _ = cli(capsys, "subscribers", "show", "ada@example.com", "--config", str(other))
    assert f"unsubscribed, by import of {exported}" in shown


def test_a_bad_status_in_a_csv_row_names_the_line(config_path, tmp_path, capsys):
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("email,name,status\nada@example.com,Ada,gone\nbob@example.org,Bob,\n")
    code, out, err = cli(
        capsys, "subscribers", "import", str(csv_file), "--config", str(config_path)
    )
    assert code == 1
    assert err.startswith(f"{csv_file}: line 2: status 'gone' is not one of active, unsubscribed")
    assert "1 added" in out


@both_databases
def test_a_deliberate_resubscribe_is_recorded_with_who_and_when(config_path, capsys):
    import getpass  # noqa: PLC0415

    base = ("--config", str(config_path))
    cli(capsys, "subscribers", "add", "ada@example.com", "--name", "Ada", *base)
    cli(capsys, "subscribers", "remove", "ada@example.com", *base)
    assert cli(capsys, "subscribers", "add", "ada@example.com", "--resubscribe", *base)[1] == (
        "ada@example.com: active again (was unsubscribed; recorded as yours)\n"
    )
    assert status_of(load_config(config_path), "ada@example.com") == "active"
    code, shown, _ = cli(capsys, "subscribers", "show", "ada@example.com", *base)
    lines = shown.splitlines()
    assert code == 0 and lines[0] == "ada@example.com\tAda\tactive"
    assert lines[1].startswith("  Joined:  ") and lines[1].endswith(" UTC by admin from cli")
    me = f"{getpass.getuser()} at the command line"
    assert [line.split(": ", 1)[1] for line in lines[2:]] == [
        f"unsubscribed, by {me}",
        f"active, by {me}",
    ]
    # a plain add of an active address, and --resubscribe of one, change nothing
    assert cli(capsys, "subscribers", "add", "ada@example.com", "--resubscribe", *base)[1] == (
        "ada@example.com: already subscribed\n"
    )
    assert cli(capsys, "subscribers", "show", "nobody@example.com", *base)[0] == 1


def test_adding_a_bad_address_is_one_clear_line(config_path, capsys):
    code, _, err = cli(capsys, "subscribers", "add", "not an address", "--config", str(config_path))
    assert code == 1
    assert err.startswith("Error: 'not an address' is not a valid email address")
    assert len(err.strip().splitlines()) == 1


@pytest.fixture
def endpoint(config_path):
    config = load_config(config_path)
    add_subscriber(config, "ada@example.com", "Ada", now())
    with http_serving(make_site_app(Site(config, KEY), now)) as url:
        yield url, config


def status_of(config, address):
    return dict((email, status) for email, _, status in subscribers(config))[address]


def request(url, data=None):
    reply = http_request(url, data)
    return reply.status, reply.text


@both_databases
def test_get_only_asks_and_post_unsubscribes(endpoint):
    base, engine = endpoint
    token = make_token(KEY, LIST_ID, "ada@example.com")
    status, page = request(f"{base}/u/{token}")
    assert status == 200
    assert '<form method="post" action="/u/' in page
    assert status_of(engine, "ada@example.com") == "active"  # a link scanner's GET changes nothing
    status, page = request(f"{base}/u/{token}", data=b"List-Unsubscribe=One-Click")
    assert status == 200
    assert "You are unsubscribed" in page
    assert status_of(engine, "ada@example.com") == "unsubscribed"


@pytest.mark.parametrize(
    "token",
    [
        make_token(KEY, "another-list.example.com", "ada@example.com"),
        make_token(b"some-other-key-some-other-key!!!", LIST_ID, "ada@example.com"),
        make_token(KEY, LIST_ID, "eve@example.com").split(".")[0]
        + "."
        + make_token(KEY, LIST_ID, "ada@example.com").split(".")[1],
        "not-a-token",
    ],
)
def test_tampered_or_foreign_tokens_are_refused(endpoint, token):
    base, engine = endpoint
    status, page = request(f"{base}/u/{token}", data=b"List-Unsubscribe=One-Click")
    assert status in (400, 404)
    assert "This link is not valid" in page
    assert status_of(engine, "ada@example.com") == "active"


def test_a_quickstart_link_unsubscribes_through_serve_without_any_variable(
    fast_cli, write_config, tmp_path, monkeypatch
):
    import email  # noqa: PLC0415
    import mailbox  # noqa: PLC0415
    import re  # noqa: PLC0415
    import stat  # noqa: PLC0415
    from email import policy  # noqa: PLC0415

    from newsletter.config import resolve_secrets  # noqa: PLC0415

    monkeypatch.delenv("NEWSLETTER_UNSUBSCRIBE_SECRET", raising=False)
    config_path = write_config()
    assert main(["run", "--config", str(config_path), "--as-of", "2024-07-16", "--quiet"]) == 0
    key_file = tmp_path / "var" / "unsubscribe.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    outbox = mailbox.Maildir(tmp_path / "var" / "outbox", create=False)
    message = email.message_from_bytes(
        outbox.get_bytes(next(outbox.iterkeys())), policy=policy.default
    )
    reader = str(message["X-Envelope-To"])
    link = re.search(r"<https://[^>]+(/u/[^>]+)>", str(message["List-Unsubscribe"])).group(1)
    config = load_config(config_path)
    site = Site.for_config(config, resolve_secrets(config, {}))  # what `newsletter serve` uses
    with http_serving(make_site_app(site, now)) as url:
        status, page = request(f"{url}{link}", data=b"List-Unsubscribe=One-Click")
    assert status == 200 and "You are unsubscribed" in page
    assert status_of(config, reader) == "unsubscribed"
