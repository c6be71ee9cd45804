"""The rendered issue of the week to 2024-07-17, held as golden files (pytest --update-golden)."""

from __future__ import annotations

from datetime import UTC, datetime

from newsletter.config import NewsletterSection
from newsletter.mail.compose import MessageFactory, message_id
from newsletter.models import Subscriber

INFO = NewsletterSection()  # the shipped defaults: Rotation Digest <digest@example.com>


def test_html_and_text_match_the_golden_files(build_day, golden):
    rendered = build_day("2024-07-17").rendered
    golden("issue-2024-07-17.html", rendered.html)
    golden("issue-2024-07-17.txt", rendered.text)


def test_headers_match_the_golden_file(build_day, golden):
    rendered = build_day("2024-07-17").rendered
    factory = MessageFactory(rendered, INFO, datetime(2024, 7, 17, 21, 30, tzinfo=UTC))
    subscriber = Subscriber("ada.lovelace@example.com", "Ada Lovelace")
    raw = factory.build(
        subscriber, message_id(INFO.list_id, "2024-07-17", subscriber.email), "example.token"
    )
    headers = raw.split(b"\r\n\r\n", 1)[0].decode().replace("\r\n", "\n")
    golden("headers-2024-07-17.txt", headers + "\n")
