"""Rendering, composition, charts, tokens and the subscriber list: safe by default."""

from __future__ import annotations

import dataclasses
import email
import re
import struct
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import pytest

from newsletter.compose import ListInfo, compose_message, message_id
from newsletter.config import load_config
from newsletter.errors import RenderError, SubscriberError
from newsletter.models import Subscriber
from newsletter.pipeline import BuiltIssue, build_issue
from newsletter.render import make_environment, render_issue
from newsletter.subscribers import load_subscribers, normalise_address
from newsletter.unsubscribe import make_token, verify_token

REPO = Path(__file__).resolve().parent.parent
INFO = ListInfo(
    sender="Rotation Digest <digest@example.com>",
    list_id="rotation-digest.example.com",
    list_name="Rotation Digest",
    base_url="https://digest.example.com",
    unsubscribe_mailto="unsubscribe@example.com",
)
NOW = datetime(2024, 7, 16, 21, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> BuiltIssue:
    root = tmp_path_factory.mktemp("email")
    path = root / "config.yaml"
    path.write_text(f"templates:\n  dir: {REPO / 'templates'}\npaths:\n  var_dir: {root / 'var'}\n")
    from datetime import date  # noqa: PLC0415

    return build_issue(load_config(path), date(2024, 7, 16))


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_charts_are_opaque_retina_pngs_with_alt_text(built):
    charts = {chart.name: chart for chart in built.rendered.images}
    assert set(charts) == {"week_returns", "relative_strength"}
    for chart in charts.values():
        width, height = png_size(chart.png)
        assert (width, height) == (chart.width_px, chart.height_px)
        assert width == 1200
        assert b"tEXt" not in chart.png, "no metadata chunks (deterministic bytes)"
        assert len(chart.png) < 60_000
    assert "Russell 2000 +5.38%" in charts["week_returns"].alt_text
    assert "gained 4.5% against the S&P 500 this week" in charts["relative_strength"].alt_text


def test_charts_are_deterministic(built, tmp_path):
    config_path = tmp_path / "config.yaml"
    config_path.write_text(
        f"templates:\n  dir: {REPO / 'templates'}\npaths:\n  var_dir: {tmp_path / 'var'}\n"
    )
    from datetime import date  # noqa: PLC0415

    again = build_issue(load_config(config_path), date(2024, 7, 16))
    assert [c.png for c in again.rendered.images] == [c.png for c in built.rendered.images]
    assert again.rendered.html == built.rendered.html


def test_html_is_inlined_and_text_is_unescaped(built):
    html = built.rendered.html
    assert 'style="' in html
    assert "@media only screen" in html  # responsive rules kept for clients that support them
    assert "S&amp;P 500" in html
    assert "S&P 500" in built.rendered.text
    assert "&amp;" not in built.rendered.text
    assert re.search(r"\{\{|\{%|\bnan\b|\bNone\b", built.rendered.text + html) is None


def test_content_is_autoescaped(built):
    issue = dataclasses.replace(
        built_issue(built),
        subject="<script>alert(1)</script>",
        postal_address='<img src=x onerror="x()">',
    )
    rendered = render_issue(issue, make_environment(REPO / "templates"))
    assert "<script>alert(1)" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "<img src=x" not in rendered.html


def built_issue(built: BuiltIssue):
    from newsletter.models import Issue  # noqa: PLC0415

    return Issue(
        stats=built.stats,
        charts=built.rendered.images,
        subject=built.rendered.subject,
        preheader="p",
        newsletter_name="Rotation Digest",
        base_url="https://x.example.com",
        postal_address="1 Main St",
    )


def test_a_template_error_is_a_render_error_naming_the_template(built, tmp_path):
    for name in ("issue.html.j2", "issue.txt.j2"):
        (tmp_path / name).write_text("{{ issue.no_such_field }}")
    with pytest.raises(RenderError, match=r"issue\.txt\.j2.*no_such_field"):
        render_issue(built_issue(built), make_environment(tmp_path))
    with pytest.raises(RenderError, match=r"template folder .* not found"):
        make_environment(tmp_path / "missing")


def test_headers_cannot_be_injected(built):
    rendered = dataclasses.replace(built.rendered, subject="Hi\r\nBcc: victim@example.com")
    with pytest.raises(ValueError, match=r"linefeed|carriage"):
        compose_message(rendered, Subscriber("a@example.com", "A"), INFO, token="t.s", now=NOW)
    sneaky = Subscriber("a@example.com", "Eve\r\nBcc: victim@example.com")
    with pytest.raises(ValueError, match="CR or LF"):
        compose_message(built.rendered, sneaky, INFO, token="t.s", now=NOW)


def test_message_is_personalised_only_where_it_must_be(built):
    a = compose_message(
        built.rendered, Subscriber("a@example.com", "A"), INFO, token="tokA.sig", now=NOW
    )
    b = compose_message(
        built.rendered, Subscriber("b@example.com", "B"), INFO, token="tokB.sig", now=NOW
    )
    assert a["Message-ID"] == message_id(INFO.list_id, "2024-07-16", "a@example.com")
    assert a["Message-ID"] != b["Message-ID"]
    assert "https://digest.example.com/u/tokA.sig" in str(a["List-Unsubscribe"])
    html_a = a.get_body(("html",)).get_content()
    assert "https://digest.example.com/u/tokA.sig" in html_a
    assert "tokB" not in html_a
    parsed = email.message_from_bytes(a.as_bytes(), policy=policy.default)
    assert parsed["Date"] == "Tue, 16 Jul 2024 21:30:00 +0000"


def test_unsubscribe_tokens_verify_and_refuse_tampering():
    key = b"k" * 32
    token = make_token(key, "list.example.com", "Ada@Example.com")
    assert verify_token(key, "list.example.com", token) == "Ada@Example.com"
    assert verify_token(key, "other.example.com", token) is None
    assert verify_token(b"x" * 32, "list.example.com", token) is None
    forged = (
        make_token(key, "list.example.com", "eve@example.com").split(".")[0]
        + "."
        + token.split(".")[1]
    )
    assert verify_token(key, "list.example.com", forged) is None
    assert verify_token(key, "list.example.com", "garbage") is None


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("  Ada@Example.COM ", "Ada@example.com"),
        ("a@b", None),
        ("a b@example.com", None),
        ("a@example.com>, evil@example.com", None),
        ("a..b@example.com", None),
        ("a@example.com\r\nBcc: x@example.com", None),
    ],
)
def test_addresses_are_normalised_or_refused(raw, normalised):
    assert normalise_address(raw) == normalised


def test_a_bad_subscriber_row_is_named(tmp_path):
    path = tmp_path / "subs.csv"
    path.write_text("email,name\nok@example.com,Ok\nnot-an-address,Bad\n")
    with pytest.raises(SubscriberError) as err:
        load_subscribers(path)
    assert str(err.value) == f"{path}: line 3: 'not-an-address' is not a valid email address"


def test_duplicate_subscribers_are_mailed_once(tmp_path):
    path = tmp_path / "subs.csv"
    path.write_text("email,name\nok@example.com,Ok\nOK@EXAMPLE.com,Again\n")
    assert [s.email for s in load_subscribers(path)] == ["ok@example.com"]
