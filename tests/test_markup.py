"""The email's markup, checked by html-validate (npm; `npm ci` installs it from package.json).

Three of its recommended rules are off because email needs what they forbid: inline styles
(clients drop <style>), the presentational table attributes Outlook lays out with, and the
conditional comment that gives Outlook its fixed-width column (.htmlvalidate.json). Every
other rule applies, the accessibility ones among them: `<th scope>` (wcag/h63), image alt
text, a title under 70 characters.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from .conftest import REPO

VALIDATOR = REPO / "node_modules" / ".bin" / "html-validate"
pytestmark = pytest.mark.skipif(
    not VALIDATOR.exists(), reason="html-validate is not installed (run `npm ci` in the project)"
)
NOTE = (
    "Small caps **finally** had their week.\n\n- one [link](https://example.com/a)\n- two\n\n"
    "> a quote with `code`"
)


def _findings(html: str, tmp_path) -> list[str]:
    page = tmp_path / "page.html"
    page.write_text(html)
    result = subprocess.run(
        [
            str(VALIDATOR),
            "--formatter",
            "json",
            "--config",
            str(REPO / ".htmlvalidate.json"),
            str(page),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    reports = json.loads(result.stdout or "[]")
    return [
        f"{message['line']}:{message['column']} {message['ruleId']}: {message['message']}"
        for report in reports
        for message in report["messages"]
    ]


@pytest.mark.parametrize("week", ["2024-07-17", "2025-09-26"])
def test_the_email_and_its_web_version_are_valid_accessible_html(build_day, week, tmp_path):
    built = build_day(week)
    assert _findings(built.rendered.html, tmp_path) == []
    assert _findings((built.folder / "web.html").read_text(), tmp_path) == []


def test_an_editors_note_is_valid_html(tmp_path):
    from newsletter.issue.render import render_note  # noqa: PLC0415

    note = render_note(NOTE)
    assert "<strong>finally</strong>" in note
    page = (
        f'<!DOCTYPE html><html lang="en"><head><title>Note</title></head><body>{note}</body></html>'
    )
    assert _findings(page, tmp_path) == []


def test_the_validator_reports_what_it_should(tmp_path):
    """A data table without scope and a long title: the check can fail."""
    page = (
        '<!DOCTYPE html><html lang="en"><head><title>' + "x" * 80 + "</title></head><body>"
        "<table><tbody><tr><th>Fund</th><th>Week</th></tr><tr><th>SPY</th><td>1</td></tr></tbody>"
        "</table></body></html>"
    )
    rules = {finding.split()[1].rstrip(":") for finding in _findings(page, tmp_path)}
    assert {"wcag/h63", "long-title"} <= rules
