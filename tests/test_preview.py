"""The preview server on 127.0.0.1: the draft as it ships, its images, rebuilds on the next
request after an edit, a live-reload event from the real file watcher, and build errors shown
on the page."""

from __future__ import annotations

import http.client
import threading
from datetime import UTC, date, datetime

import pytest

from newsletter.app.build import ChartCache, build_issue
from newsletter.app.preview import DraftPreview
from newsletter.app.review import approve_issue
from newsletter.config import load_config
from newsletter.web.preview import make_preview_app
from tests.conftest import Links, http_request, http_serving


@pytest.fixture
def preview(write_config, market, charts):
    config_path = write_config()
    july_19 = date(2024, 7, 19)
    draft = DraftPreview(config_path, july_19, market=market.at(july_19), charts=charts)
    stop = threading.Event()
    draft.current()
    watcher = threading.Thread(target=draft.watch, args=(stop,), daemon=True)
    watcher.start()
    try:
        app = make_preview_app(draft, stop, lambda: datetime.now(UTC), "127.0.0.1")
        with http_serving(app, on_stop=stop.set) as url:
            yield url, config_path
    finally:
        stop.set()
        watcher.join(timeout=10)


def test_the_page_shows_the_draft_with_its_size_headers_and_lint(preview):
    url, _ = preview
    reply = http_request(f"{url}/")
    page = reply.text
    assert reply.status == 200
    assert "script-src 'nonce-" in reply.headers["Content-Security-Policy"]
    assert "Small caps beat the S&amp;P 500 by 3.6 points in five sessions" in page
    assert "of Gmail's 102 KB clip limit" in page
    assert "List-Unsubscribe-Post" in page
    assert "left out of the email: no stored analyst estimates" in page  # a warning, no error
    assert 'src="/draft/preview.html?v=1"' in page
    assert "SCOREBOARD\nTotal return to the close of" in page  # the text part
    assert "Not approved. Run <code>newsletter approve --as-of 2024-07-19</code>" in page


def test_the_page_says_when_this_exact_content_is_approved(preview, prepare):
    url, config_path = preview
    config = load_config(config_path)
    approve_issue(config, prepare(config, date(2024, 7, 19)).built, datetime.now(UTC))
    assert (
        "Approved: this exact content is what the schedule sends to the readers who do not have it yet."
        in http_request(f"{url}/").text
    )


def test_the_framed_email_and_all_its_images_load(preview):
    url, _ = preview
    email = http_request(f"{url}/draft/preview.html")
    assert email.status == 200
    sources = Links(email.text).images
    assert len(sources) == 5
    for src in sources:
        chart = http_request(f"{url}/draft/{src}")
        assert (chart.status, chart.content_type) == (200, "image/png")
        assert chart.body.startswith(b"\x89PNG")
    assert http_request(f"{url}/draft/../config.yaml").status == 404


def test_an_edited_note_is_in_the_next_response_and_pushes_a_reload_event(preview, tmp_path):
    url, _ = preview
    events = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=30)
    events.request("GET", "/events")
    stream = events.getresponse()
    assert stream.getheader("Content-Type") == "text/event-stream"

    notes = tmp_path / "issues" / "2024-07-19" / "notes.md"
    notes.parent.mkdir(parents=True)
    notes.write_text("Subject: The editor's pick\n\nSmall caps, **finally**.\n")
    assert stream.readline() == b"event: change\n"
    events.close()

    page = http_request(f"{url}/").text
    assert "The editor&#39;s pick" in page
    assert 'src="/draft/preview.html?v=2"' in page
    assert "<strong>finally</strong>" in http_request(f"{url}/draft/preview.html").text


def test_a_broken_config_shows_on_the_page_and_the_fix_recovers(preview):
    url, config_path = preview
    good = config_path.read_text()
    config_path.write_text(good + "\nschedule:\n  day_of_wek: fri\n")
    broken = http_request(f"{url}/")
    assert broken.status == 500
    assert "unknown key &#39;schedule.day_of_wek&#39;" in broken.text
    config_path.write_text(good)
    fixed = http_request(f"{url}/")
    assert fixed.status == 200
    assert "Russell 2000 beat" in fixed.text


def test_the_chart_cache_redraws_only_when_the_numbers_change(write_config, market):
    config = load_config(write_config())
    cache = ChartCache()
    july_19 = market.at(date(2024, 7, 19))
    first = build_issue(config, None, market=july_19, chart_cache=cache)
    again = build_issue(config, None, market=july_19, chart_cache=cache)
    fresh = build_issue(config, None, market=july_19)
    pngs = [name for name in first.files if name.endswith(".png")]
    assert len(pngs) == 5
    for name in pngs:
        assert again.files[name] is first.files[name]  # not redrawn
        assert first.files[name] == fresh.files[name]  # what a fresh build draws
    july_12 = build_issue(config, None, market=market.at(date(2024, 7, 12)), chart_cache=cache)
    assert july_12.files["sectors.png"] != first.files["sectors.png"]
    assert len(cache) == 1


def _get(url, path, host):
    """GET `path` with the Host header `host`: status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=30)
    connection.putrequest("GET", path, skip_host=True)
    connection.putheader("Host", host)
    connection.endheaders()
    reply = connection.getresponse()
    status, body = reply.status, reply.read() if path != "/events" else b""
    connection.close()
    return status, body


def test_only_requests_for_the_servers_own_address_are_answered(preview):
    """DNS rebinding: a page on evil.example whose name now points at 127.0.0.1 reaches the
    server, but its requests carry Host: evil.example, so they read nothing of the draft."""
    url, _ = preview
    port = url.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1:1", f"127.0.0.2:{port}", ""):
        for path in ("/", "/draft/preview.html", "/draft/email.txt", "/events"):
            status, body = _get(url, path, host)
            assert status == 421, (host, path)
            assert b"Rotation" not in body and b"SCOREBOARD" not in body
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
        status, body = _get(url, "/draft/preview.html", host)
        assert status == 200, host
        assert b"<html" in body


def test_the_shell_may_not_be_framed_and_frames_only_its_own_draft(preview):
    url, _ = preview
    shell = http_request(f"{url}/").headers["Content-Security-Policy"]
    assert shell.endswith("; frame-src 'self'; connect-src 'self'; frame-ancestors 'none'")
    draft = http_request(f"{url}/draft/preview.html").headers["Content-Security-Policy"]
    assert draft.endswith("; frame-ancestors 'self'")


def test_stopping_the_server_ends_an_open_event_stream_cleanly(write_config, market, charts):
    """A stop (Ctrl-C) with a page open: the stream ends as a complete response (a chunked
    body with its last chunk), not by the graceful-stop timeout cutting the connection."""
    july_19 = date(2024, 7, 19)
    draft = DraftPreview(write_config(), july_19, market=market.at(july_19), charts=charts)
    stop = threading.Event()
    app = make_preview_app(draft, stop, lambda: datetime.now(UTC), "127.0.0.1")
    with http_serving(app, on_stop=stop.set) as url:
        events = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=30)
        events.request("GET", "/events")
        stream = events.getresponse()
        assert stream.status == 200
    assert stop.is_set()
    assert stream.read() == b""  # http.client raises IncompleteRead on a cut chunked body
    events.close()
