"""Rendering, composition, charts, tokens and the subscriber list: safe by default."""

from __future__ import annotations

import dataclasses
import email
import io
import os
import re
import struct
import sys
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import pytest
from PIL import Image

from newsletter.app.build import build_issue
from newsletter.app.built import BuiltIssue
from newsletter.config import NewsletterSection, load_config
from newsletter.errors import RenderError, SubscriberError
from newsletter.issue.render import make_environment, render_issue
from newsletter.mail.addresses import normalise_address, read_subscriber_csv
from newsletter.mail.compose import MessageFactory, message_id
from newsletter.mail.unsubscribe import make_token, verify_token
from newsletter.models import UNSUBSCRIBE_MARKER, Subscriber

REPO = Path(__file__).resolve().parent.parent
INFO = NewsletterSection()  # the shipped defaults: Rotation Digest <digest@example.com>
NOW = datetime(2024, 7, 16, 21, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def built(build_day) -> BuiltIssue:
    return build_day("2024-07-16")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_charts_are_small_opaque_phone_pngs_with_alt_text(built):
    charts = {chart.name: chart for chart in built.rendered.images}
    assert set(charts) == {"ytd", "spread_distribution", "relative_strength", "megacaps", "sectors"}
    for chart in charts.values():
        width, height = png_size(chart.png)
        assert (width, height) == (chart.width_px, chart.height_px)
        assert width == 686, "twice the 343 CSS px a phone shows"
        assert b"tEXt" not in chart.png, "no metadata chunks (deterministic bytes)"
        assert len(chart.png) < 30_000
    assert sum(len(chart.png) for chart in charts.values()) < 100_000
    assert "IWM gained 4.47% on SPY this week" in charts["relative_strength"].alt_text
    assert "by 9.9 pp in five sessions" in charts["spread_distribution"].alt_text  # ^RUT-^GSPC
    assert "this week's is the largest" in charts["spread_distribution"].alt_text
    assert "6 mega caps made 56.2% of the S&P 500's" in charts["megacaps"].alt_text
    assert "Nvidia the largest, +4.76 pp" in charts["megacaps"].alt_text
    assert "QQQ leads the year at +21.6%" in charts["ytd"].alt_text
    for chart in charts.values():
        with Image.open(io.BytesIO(chart.png)) as image:
            assert image.mode == "P"  # a palette PNG...
            assert "transparency" not in image.info  # ...with an opaque background (dark mode)


def test_the_sector_chart_says_how_many_sectors_beat_the_benchmark(built):
    """Its alt text ranks every sector, best first, and its count of sectors above the
    S&P 500's week is the count of that ranking's values above it."""
    alt = next(c.alt_text for c in built.rendered.images if c.name == "sectors")
    found = re.match(r"(\d+) of 11 sector funds beat SPY's ([+\u2212][\d.]+)% this week", alt)
    assert found, alt
    benchmark = float(found.group(2).replace("\u2212", "-"))
    ranking = alt.split("best first: ", 1)[1].rstrip(".").split(", ")
    values = [float(item.rsplit(" ", 1)[1].rstrip("%").replace("\u2212", "-")) for item in ranking]
    assert len(values) == 11 and values == sorted(values, reverse=True)
    assert int(found.group(1)) == sum(value > benchmark for value in values)


def test_charts_are_deterministic(built, tmp_path):
    config_path = tmp_path / "config.yaml"
    config_path.write_text(
        f"templates:\n  dir: {REPO / 'templates'}\npaths:\n  var_dir: {tmp_path / 'var'}\n"
    )
    from datetime import date  # noqa: PLC0415

    again = build_issue(load_config(config_path), date(2024, 7, 16))
    assert [c.png for c in again.rendered.images] == [c.png for c in built.rendered.images]
    assert again.rendered.html == built.rendered.html


def test_a_command_line_build_draws_in_two_processes_and_the_same_bytes(built, tmp_path):
    """`newsletter build` in its own single-threaded process forks two chart workers
    (app.build.chart_workers); what they draw is byte for byte what one process draws."""
    import subprocess  # noqa: PLC0415

    from .conftest import newsletter_command  # noqa: PLC0415

    config_path = tmp_path / "config.yaml"
    config_path.write_text(
        f"templates:\n  dir: {REPO / 'templates'}\npaths:\n  var_dir: {tmp_path / 'var'}\n"
    )
    probe = "import newsletter.app.build as b; print(b.chart_workers())"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip() == ("2" if (os.cpu_count() or 1) > 1 else "1")  # fmt: skip
    out = tmp_path / "out"
    command = newsletter_command("build", "--config", str(config_path), "--as-of", "2024-07-16")
    subprocess.run([*command, "--out", str(out), "--quiet"], check=True, capture_output=True)
    for chart in built.rendered.images:
        assert (out / chart.filename).read_bytes() == chart.png, chart.name


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


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=policy.default)


def test_headers_cannot_be_injected(built):
    rendered = dataclasses.replace(built.rendered, subject="Hi\r\nBcc: victim@example.com")
    with pytest.raises(ValueError, match="CR or LF"):
        MessageFactory(rendered, INFO, NOW)
    sneaky = Subscriber("a@example.com", "Eve\r\nBcc: victim@example.com")
    with pytest.raises(ValueError, match="CR or LF"):
        MessageFactory(built.rendered, INFO, NOW).build(sneaky, "<x@example.com>", "t.s")


def test_the_fast_message_round_trips_through_the_stdlib_parser(built):
    factory = MessageFactory(built.rendered, INFO, NOW)
    subscriber = Subscriber("zoe@example.com", 'Zoë "Z" Müller, Jr.')
    raw = factory.build(subscriber, "<id-1@example.com>", "tok.sig")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    message = parse(raw)
    for part in (message.get_body(("html",)), message.get_body(("plain",))):
        encoded = part.get_payload().splitlines()
        assert max(len(line) for line in encoded) <= 76  # QP and base64 line limits
        assert not any(line.startswith(".") for line in encoded)  # no dot-stuffing needed
    assert message["To"].addresses[0].display_name == 'Zoë "Z" Müller, Jr.'
    assert message["To"].addresses[0].addr_spec == "zoe@example.com"
    link = "https://digest.example.com/u/tok.sig"
    html = message.get_body(("html",)).get_content().replace("\r\n", "\n")
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert html == built.rendered.html.replace(UNSUBSCRIBE_MARKER, link).replace("\r\n", "\n")
    assert text == built.rendered.text.replace(UNSUBSCRIBE_MARKER, link).replace("\r\n", "\n")
    images = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert [part.get_content() for part in images] == [chart.png for chart in built.rendered.images]
    assert message["Subject"] == built.rendered.subject


def test_message_is_personalised_only_where_it_must_be(built):
    factory = MessageFactory(built.rendered, INFO, NOW)
    a = parse(
        factory.build(
            Subscriber("a@example.com", "A"),
            message_id(INFO.list_id, "2024-07-16", "a@example.com"),
            "tokA.sig",
        )
    )
    b = parse(
        factory.build(
            Subscriber("b@example.com", "B"),
            message_id(INFO.list_id, "2024-07-16", "b@example.com"),
            "tokB.sig",
        )
    )
    assert a["Message-ID"] != b["Message-ID"]
    assert message_id(INFO.list_id, "2024-07-16", "A@example.com") == message_id(
        INFO.list_id, "2024-07-16", "a@example.com"
    )
    assert "https://digest.example.com/u/tokA.sig" in str(a["List-Unsubscribe"])
    html_a = a.get_body(("html",)).get_content()
    assert "https://digest.example.com/u/tokA.sig" in html_a
    assert "tokB" not in html_a
    assert a["Date"] == "Tue, 16 Jul 2024 21:30:00 +0000"
    test_copy = parse(
        MessageFactory(built.rendered, INFO, NOW, test=True).build(
            Subscriber("a@example.com", ""), "<t@x>", "t.s"
        )
    )
    assert str(test_copy["Subject"]).startswith("[TEST] ")


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
        ("zoe@BÜCHER.example", "zoe@xn--bcher-kva.example"),
    ],
)
def test_addresses_are_normalised(raw, normalised):
    assert normalise_address(raw) == normalised


@pytest.mark.parametrize(
    "raw",
    [
        "a@b",
        "a b@example.com",
        "a@example.com>, evil@example.com",
        "a..b@example.com",
        "a@example.com\r\nBcc: x@example.com",
        "",
    ],
)
def test_bad_addresses_are_refused(raw):
    with pytest.raises(SubscriberError, match="is not a valid email address"):
        normalise_address(raw)


def test_bad_subscriber_rows_are_named_and_the_good_ones_kept(tmp_path):
    path = tmp_path / "subs.csv"
    path.write_text(
        'email,name\nok@example.com,Ok\nnot-an-address,Bad\nOK@EXAMPLE.com,Again\nx@example.org,"Ctl\x07"\n'
    )
    read = read_subscriber_csv(path)
    assert [s.email for s in read.rows()] == ["ok@example.com"]
    assert read.duplicates == 1
    assert read.errors[0].startswith(
        f"{path}: line 3: 'not-an-address' is not a valid email address"
    )
    assert read.errors[1] == f"{path}: line 5: the name contains control characters"


def _part_bytes(raw: bytes) -> dict[str, int]:
    """Bytes of each MIME leaf as sent (its encoded body), by content type (PNGs summed)."""
    sizes: dict[str, int] = {}
    for part in parse(raw).walk():
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        sizes[kind] = sizes.get(kind, 0) + len(part.get_payload().encode())
    return sizes


@pytest.mark.parametrize("week", ["2024-07-17", "2025-02-20", "2008-10-10"])
def test_a_message_with_its_charts_inline_fits_200_kb(build_day, week):
    """Gmail clips an HTML part over 102 KB; a message over 200 KB is slow on a phone."""
    rendered = build_day(week).rendered
    raw = MessageFactory(rendered, INFO, NOW).build(
        Subscriber("zoe@example.com", "Zoë"), "<id-1@example.com>", "tok.sig"
    )
    sizes = _part_bytes(raw)
    assert len(raw) <= 200_000, sizes
    assert sizes["text/html"] <= 60_000, sizes
    assert sizes["image/png"] <= 4 / 3 * 100_000 * 1.02, sizes
