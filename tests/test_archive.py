"""The archive: every sent issue kept and served with its charts, an index and an Atom feed
that a real feed parser accepts; the email's "view in browser" link points at it."""

from __future__ import annotations

import html as html_lib
import http.client
import io
import json
import os
from email import message_from_bytes
from urllib.parse import urljoin, urlsplit

import feedparser
import pytest
from PIL import Image

from newsletter.app.send import send_issue
from newsletter.app.site import Site
from newsletter.config import load_config, resolve_secrets
from newsletter.issue.archive import read_archived_file
from newsletter.web.site import make_site_app
from tests.conftest import Links, RecordingHandler, http_request, http_serving, now_utc, serving

DAYS = ("2024-07-12", "2024-07-19")


@pytest.fixture(scope="module")
def site(tmp_path_factory, build_day):
    """Two issues sent through a real SMTP server, then the archive served on 127.0.0.1."""
    root = tmp_path_factory.mktemp("archive")
    handler = RecordingHandler()
    with serving(handler) as port:
        (root / "config.yaml").write_text(
            f"paths:\n  var_dir: {root / 'var'}\nsmtp:\n  host: 127.0.0.1\n  port: {port}\n"
        )
        config = load_config(root / "config.yaml")
        secrets = resolve_secrets(config, {"NEWSLETTER_UNSUBSCRIBE_SECRET": "archive-test"})
        for day in DAYS:
            send_issue(config, build_day(day), secrets=secrets, clock=now_utc)
    with http_serving(make_site_app(Site(config, None), now_utc)) as url:
        yield url, config, handler


def test_each_sent_issue_is_archived_with_its_files(site, build_day):
    _, config, _ = site
    for day in DAYS:
        folder = config.archive_dir / day
        meta = json.loads((folder / "issue.json").read_text())
        assert meta["subject"] == build_day(day).rendered.subject
        assert json.loads((folder / "stats.json").read_text())["as_of"] == day
        assert "View in your browser" in (folder / "email.txt").read_text()
        page = (folder / "index.html").read_text()
        assert "View in your browser" not in page  # the web version does not link to itself
        assert "urn:rotation-digest" not in page and "/u/" not in page  # no unsubscribe token
        assert len(list(folder.glob("*.png"))) == 5


def test_the_index_lists_issues_newest_first_and_every_link_and_image_loads(site, build_day):
    url, _, _ = site
    index = http_request(f"{url}/")
    assert (index.status, index.content_type) == (200, "text/html; charset=utf-8")
    html = index.text
    subjects = [html_lib.escape(build_day(day).rendered.subject, quote=False) for day in DAYS]
    assert html.index(subjects[1]) < html.index(subjects[0])
    links = Links(html)
    assert set(links.hrefs) == {"/feed.atom", *(f"/issues/{day}/" for day in DAYS)}
    for href in links.hrefs:
        assert http_request(f"{url}{href}").status == 200, href
    page = http_request(f"{url}/issues/{DAYS[1]}/")
    assert page.status == 200
    assert subjects[1] in page.text
    images = Links(page.text)
    assert len(images.images) == 5
    assert "../../" in images.hrefs  # "All issues" leads to the index
    assert http_request(urljoin(f"{url}/issues/{DAYS[1]}/", "../../")).text == index.text
    for src in images.images:
        chart = http_request(f"{url}/issues/{DAYS[1]}/{src}")
        assert (chart.status, chart.content_type) == (200, "image/png"), src
        assert Image.open(io.BytesIO(chart.body)).size[0] >= 600


def test_the_emails_view_in_browser_link_is_the_archive_page(site):
    url, config, handler = site
    message = message_from_bytes(handler.envelopes[-1].content)
    text = message.get_payload(0).get_payload(decode=True).decode()
    link = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("View in"))
    assert link == f"{config.newsletter.base_url}/issues/{DAYS[1]}/"
    assert http_request(f"{url}{urlsplit(link).path}").status == 200


def test_the_atom_feed_parses_with_a_real_feed_parser(site, build_day):
    url, config, _ = site
    reply = http_request(f"{url}/feed.atom")
    assert (reply.status, reply.content_type) == (200, "application/atom+xml")
    feed = feedparser.parse(reply.body)
    assert feed.bozo == 0, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.title == config.newsletter.name
    assert [entry.link for entry in feed.entries] == [
        f"{config.newsletter.base_url}/issues/{day}/" for day in reversed(DAYS)
    ]
    assert [entry.title for entry in feed.entries] == [
        build_day(day).rendered.subject for day in reversed(DAYS)
    ]
    assert all(entry.summary and entry.updated_parsed for entry in feed.entries)


@pytest.mark.parametrize(
    "path",
    [
        "/issues/2024-07-19/../../config.yaml",
        "/issues/2024-07-19/issue.json.bak",
        "/issues/..%2f..%2fconfig.yaml/",
        "/issues/2030-01-04/",
        "/nothing",
        "/u/YWRhQGV4YW1wbGUuY29t.VaqoKP8zuBBS_lBMguzNwg",
    ],
)
def test_anything_outside_the_archive_is_not_found(site, path):
    url, _, _ = site
    assert http_request(f"{url}{path}").status == 404


def test_an_issue_path_without_its_slash_redirects(site):
    url, _, _ = site
    connection = http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=10)
    connection.request("GET", f"/issues/{DAYS[0]}")
    moved = connection.getresponse()
    assert (moved.status, moved.getheader("Location")) == (301, f"/issues/{DAYS[0]}/")
    connection.close()
    reply = http_request(f"{url}/issues/{DAYS[0]}")
    assert reply.status == 200  # urllib followed the 301 to /issues/<as-of>/
    assert b"<html" in reply.body


def test_a_symlink_in_an_archived_issue_is_not_followed(site, tmp_path):
    """A link in a published issue's folder to a file elsewhere (standing in for /etc/passwd)
    is not served; the same bytes as a regular file beside it are (so the name is servable)."""
    url, config, _ = site
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    folder = config.archive_dir / DAYS[1]
    (folder / "passwd.txt").symlink_to(secret)
    (folder / "copy.txt").write_bytes(secret.read_bytes())
    try:
        assert http_request(f"{url}/issues/{DAYS[1]}/passwd.txt").status == 404
        copy = http_request(f"{url}/issues/{DAYS[1]}/copy.txt")
        assert (copy.status, copy.body) == (200, secret.read_bytes())
    finally:
        (folder / "passwd.txt").unlink()
        (folder / "copy.txt").unlink()


def _issue_folder(root, name="2024-07-19"):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "issue.json").write_text("{}")
    (folder / "email.txt").write_text("the issue\n")
    return folder


def _link_the_file(root, outside):
    (_issue_folder(root) / "stats.json").symlink_to(outside)


def _link_the_folder(root, outside):
    real = _issue_folder(root / "elsewhere")
    (real / "stats.json").write_text("{}")
    (root / "2024-07-19").symlink_to(real)


def _link_the_marker(root, outside):
    folder = _issue_folder(root)
    (folder / "issue.json").unlink()
    (folder / "issue.json").symlink_to(outside)
    (folder / "stats.json").write_text("{}")


def _a_fifo(root, outside):
    os.mkfifo(_issue_folder(root) / "stats.json")


def _a_folder(root, outside):
    (_issue_folder(root) / "stats.json").mkdir()


def _a_regular_file(root, outside):
    (_issue_folder(root) / "stats.json").write_text('{"as_of": "2024-07-19"}')


@pytest.mark.parametrize(
    ("arrange", "expected"),
    [
        (_a_regular_file, b'{"as_of": "2024-07-19"}'),
        (_link_the_file, None),
        (_link_the_folder, None),
        (_link_the_marker, None),
        (_a_fifo, None),
        (_a_folder, None),
    ],
)
def test_only_a_regular_file_in_a_real_issue_folder_is_read(tmp_path, arrange, expected):
    root = tmp_path / "archive"
    root.mkdir()
    outside = tmp_path / "outside.json"
    outside.write_text('{"secret": true}')
    arrange(root, outside)
    assert read_archived_file(root, "2024-07-19", "stats.json") == expected
