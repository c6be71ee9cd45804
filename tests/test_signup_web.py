"""Signup over real HTTP, end to end: the form, the confirmation mail the server's notice
worker files in the built-in server's Maildir, the link's button, and the next send of an
issue reaching the new reader; with the abuse guards and the pages' headers."""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
import time
from urllib.parse import urlencode

import pytest

from newsletter.app.audience import subscribers
from newsletter.app.notices import NoticeWorker
from newsletter.app.send import send_issue
from newsletter.app.site import Site
from newsletter.config import load_config, resolve_secrets
from newsletter.web.site import make_site_app
from tests.conftest import http_request, http_serving, now_utc


@pytest.fixture
def project(write_config):
    config = load_config(write_config(subscribers={"file": None}))
    secrets = resolve_secrets(config, {})
    return config, secrets


def serving_site(config, secrets):
    site = Site.for_config(config, secrets)  # what `newsletter serve` makes
    worker = NoticeWorker(config, secrets, now_utc, site.key)
    return http_serving(make_site_app(site, now_utc, worker))


def post(url, **fields):
    return http_request(url, urlencode(fields).encode())


def mails(config, subject, count=1):
    """The messages filed with this subject once there are `count` (the worker sends them in
    the background: wait for it, at most a minute)."""
    deadline = time.monotonic() + 60
    while True:
        found = []
        if (config.outbox_dir / "cur").is_dir():  # Maildir makes tmp, new, cur after the folder
            box = mailbox.Maildir(config.outbox_dir, create=False)
            for key in box.iterkeys():
                message = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
                if message["Subject"].startswith(subject):
                    found.append(message)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def status_of(config, address):
    return {row[0]: row[2] for row in subscribers(config)}.get(address)


def test_signup_confirmation_and_the_next_issue_over_http(project, build_day):
    config, secrets = project
    with serving_site(config, secrets) as url:
        index = http_request(f"{url}/")
        assert 'action="/signup"' in index.text and 'name="page" value="/"' in index.text
        form = http_request(f"{url}/signup")
        assert form.status == 200 and "Subscribe to Rotation Digest" in form.text
        assert "frame-ancestors 'none'" in form.headers["Content-Security-Policy"]
        answer = post(f"{url}/signup", email="Rita@Example.com", name="Rita", page="/", website="")
        assert answer.status == 200 and "Check your inbox" in answer.text
        assert answer.headers["Cache-Control"] == "no-store"
        [confirmation] = mails(config, "Confirm your subscription")
        assert status_of(config, "Rita@example.com") == "unconfirmed"
        text = confirmation.get_body(preferencelist=("plain",)).get_content()
        path = re.search(r"https://digest\.example\.com(/confirm/\S+)", text).group(1)
        asked = http_request(f"{url}{path}")
        assert asked.status == 200 and f'action="{path}"' in asked.text
        assert asked.headers["X-Robots-Tag"] == "noindex"
        assert status_of(config, "Rita@example.com") == "unconfirmed"  # a GET changes nothing
        done = post(f"{url}{path}")
        assert done.status == 200 and "You are subscribed" in done.text
        assert status_of(config, "Rita@example.com") == "active"
        assert len(mails(config, "Welcome to Rotation Digest")) == 1
        again = post(f"{url}{path}")
        assert again.status == 200 and "You are subscribed already" in again.text
    assert len(mails(config, "Welcome to Rotation Digest")) == 1  # the worker has stopped: once
    built = build_day("2024-07-16")
    result = send_issue(config, built, secrets=secrets, clock=now_utc)
    assert result.report.sent == 1
    [issue] = mails(config, built.rendered.subject)
    assert issue["To"].addresses[0].addr_spec == "Rita@example.com"


def test_the_form_refuses_bad_input_and_floods_and_a_bot_gets_nothing(project):
    config, secrets = project
    with serving_site(config, secrets) as url:
        bad = post(f"{url}/signup", email="rita@", name="Rita")
        assert bad.status == 400 and "is not a valid email address" in bad.text
        assert 'value="rita@"' in bad.text  # the form again, as filled in
        bot = post(f"{url}/signup", email="bot@example.com", website="http://spam.example")
        assert bot.status == 200 and "Check your inbox" in bot.text
        assert status_of(config, "bot@example.com") is None
        huge = post(f"{url}/signup", email="big@example.com", name="x" * 10_000)
        assert huge.status == 413
        answers = [post(f"{url}/signup", email=f"r{n}@example.com").status for n in range(6)]
        assert answers == [200, 200, 200, 200, 200, 429]  # five an hour from one client
        assert http_request(f"{url}/confirm/1.2.AAAA").status == 400


def test_with_signup_off_there_is_no_form_and_no_route(write_config):
    config = load_config(write_config(subscribers={"file": None}, signup={"enabled": False}))
    site = Site.for_config(config, resolve_secrets(config, {}))
    with http_serving(make_site_app(site, now_utc)) as url:
        assert 'action="/signup"' not in http_request(f"{url}/").text
        assert http_request(f"{url}/signup").status == 404
        assert post(f"{url}/signup", email="a@example.com").status == 404
        assert http_request(f"{url}/confirm/1.2.AAAA").status == 404
