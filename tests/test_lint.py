"""The pre-send lint finds what would clip or break an email, and send refuses such an issue."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from newsletter.cli import main
from newsletter.config import NewsletterSection
from newsletter.issue.plaintext import markdown_text
from newsletter.issue.render import render_note
from newsletter.mail.compose import MessageFactory
from newsletter.mail.lint import lint_message
from newsletter.models import Subscriber

INFO = NewsletterSection(
    from_address="D <d@example.com>",
    list_id="rd.example.com",
    name="Rotation Digest",
    base_url="https://digest.example.com",
    unsubscribe_mailto="u@example.com",
)


@pytest.fixture(scope="module")
def rendered(build_day):
    return build_day("2024-07-16").rendered


def lint(rendered):
    sample = MessageFactory(rendered, INFO, datetime(2024, 7, 16, tzinfo=UTC)).build(
        Subscriber("r@example.com", "R"), "<x@rd.example.com>", "tok.sig"
    )
    return [str(finding) for finding in lint_message(rendered, sample)]


def test_the_built_issue_is_clean(rendered):
    assert lint(rendered) == []


def test_each_problem_is_one_line(rendered):
    html = rendered.html
    html = html.replace('alt="', 'data-alt="', 1)
    html = html.replace(
        "</body>",
        '<a href="http://insecure.example.com">x</a><p style="position: absolute">{{ oops }} nan</p></body>',
    )
    html = html.replace(f"cid:{rendered.images[-1].content_id}", "cid:missing@x")
    broken = dataclasses.replace(rendered, html=html + " " * (103 * 1024), subject="")
    findings = lint(broken)
    size_kb = len(broken.html.encode()) / 1024
    assert f"error: HTML is {size_kb:.0f} KB: Gmail clips messages over 102 KB" in findings
    assert "error: the subject is empty" in findings
    assert any(
        f.startswith("error: image cid:") and f.endswith("has no alt text") for f in findings
    )
    assert "error: cid:missing@x has no image part" in findings
    assert f"error: image part {rendered.images[-1].content_id} is never shown" in findings
    assert (
        "error: link 'http://insecure.example.com' is not an absolute https or mailto link"
        in findings
    )
    assert any(f.startswith("warning: CSS uses position") for f in findings)
    assert any(f.startswith("error: HTML part shows '{{'") for f in findings)


def test_a_long_subject_is_a_warning(rendered):
    findings = lint(dataclasses.replace(rendered, subject="x" * 90))
    assert findings == ["warning: the subject has 90 characters; over 78 it is cut off"]


def test_scripts_and_handlers_never_reach_a_subscriber():
    markdown = (
        'Hello **readers**.\n\n<script>alert(1)</script>\n\n<img src=x onerror="alert(2)">\n\n'
        '[ok](https://example.com/a) [bad](javascript:alert(3)) <a href="https://e.example.com" onclick="x()">c</a>'
    )
    html = render_note(markdown)
    for bad in ("<script", "onerror", "onclick", 'href="javascript', "<img"):
        assert bad not in html
    assert '<a href="https://example.com/a" rel="noopener noreferrer">ok</a>' in html
    text = markdown_text(markdown)
    assert "<script" not in text and "onerror" not in text
    assert "Hello readers." in text
    assert "ok (https://example.com/a)" in text and "alert(1)" not in text


def test_send_refuses_an_issue_with_lint_errors(
    fast_cli, write_config, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "s" * 32)
    templates = tmp_path / "templates"
    templates.mkdir()
    from .conftest import REPO  # noqa: PLC0415

    for source in (REPO / "templates").iterdir():
        text = source.read_text()
        if source.name == "issue.html.j2":
            text = text.replace(
                "{% endblock %}",
                '<tr><td><a href="http://example.com/x">plain http</a></td></tr>\n{% endblock %}',
            )
        (templates / source.name).write_text(text)
    config = write_config(templates={"dir": str(templates)})
    assert main(["send", "--config", str(config), "--as-of", "2024-07-16", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Lint error: link 'http://example.com/x' is not an absolute https or mailto link" in err
    assert err.strip().splitlines()[-1] == (
        "Error: issue 2024-07-16 has 1 lint error(s), the first: link 'http://example.com/x' is not an "
        "absolute https or mailto link; run `newsletter lint` to see all, and fix them before sending"
    )
    assert main(["lint", "--config", str(config), "--as-of", "2024-07-16"]) == 1


@pytest.mark.parametrize(
    ("markdown", "dropped"),
    [
        ("[ok](https://example.com/a) and [mail](mailto:ed@example.com)", []),
        (
            "[plain](http://example.com/x)",
            [
                "link 'http://example.com/x' was removed: only https:// and mailto: links reach readers"
            ],
        ),
        (
            '<a href="javascript:alert(1)">js</a>',  # raw HTML: markdown-it refuses the []() form
            [
                "link 'javascript:alert(1)' was removed: only https:// and mailto: links reach readers"
            ],
        ),
        (
            "![chart](https://example.com/c.png)",
            ["image 'https://example.com/c.png' was removed: the note carries text and links only"],
        ),
        (
            "<script>alert(1)</script>",
            ["a <script> was removed: the note carries text and links only"],
        ),
    ],
    ids=["https-and-mailto-kept", "http-link", "javascript-link", "image", "script"],
)
def test_lint_names_what_the_sanitiser_removed_from_the_note(markdown, dropped):
    from newsletter.issue.render import dropped_from_note  # noqa: PLC0415

    assert dropped_from_note(markdown) == dropped


def test_a_build_warns_about_a_dropped_note_link(write_config, tmp_path, prepare):
    from datetime import date  # noqa: PLC0415

    from newsletter.config import load_config  # noqa: PLC0415

    notes = tmp_path / "issues" / "2024-07-17" / "notes.md"
    notes.parent.mkdir(parents=True)
    notes.write_text("---\nRead [this](http://example.com/x).\n")
    built = prepare(load_config(write_config()), date(2024, 7, 17)).built
    texts = [str(finding) for finding in built.findings]
    assert (
        "warning: the editor's note: link 'http://example.com/x' was removed: only https:// and mailto: links reach readers"
        in texts
    )
    assert not built.lint_errors
