"""Pre-send lint: what would make the email clip, break or look wrong in a mail client.

Run on a sample message (a rendered issue composed for an example subscriber). Errors stop a
send; warnings are printed. The CSS rules are a short documented list of what Gmail and Outlook
drop (after caniemail.com's support tables): positioning, flex and grid layout, background
images, and CSS custom properties.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from email import policy
from enum import StrEnum
from html.parser import HTMLParser
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from newsletter.models import RenderedIssue

GMAIL_CLIP_BYTES = 102 * 1024
CLIP_WARNING_BYTES = 90 * 1024
MAX_SUBJECT = 78


class Severity(StrEnum):
    """An error stops a send; a warning is shown."""

    ERROR = "error"
    WARNING = "warning"


DROPPED_CSS = (
    (re.compile(r"(?<![\w-])position\s*:\s*(absolute|fixed|relative|sticky)", re.I), "position"),
    (re.compile(r"display\s*:\s*(inline-)?(flex|grid)", re.I), "flex/grid layout"),
    (re.compile(r"background(-image)?\s*:[^;]*url\(", re.I), "background image"),
    (re.compile(r"var\(\s*--", re.I), "CSS variable"),
)
LEFTOVERS = re.compile(r"\{\{|\}\}|\{%|%\}|\bnan\b|\bNone\b|\binf\b|\bNaN\b")


@dataclass(frozen=True, slots=True)
class Finding:
    level: Severity
    text: str

    def __str__(self) -> str:
        return f"{self.level}: {self.text}"


class _HtmlFacts(HTMLParser):
    """Images, links, inline styles, style sheets and visible text of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values)
        if tag == "a" and values.get("href") is not None:
            self.links.append(values["href"] or "")
        if values.get("style"):
            self.styles.append(values["style"] or "")
        if tag in ("style", "script", "title"):
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if self._hidden:
            self.styles.append(data)
        else:
            self.text.append(data)


def lint_message(rendered: RenderedIssue, sample: bytes) -> list[Finding]:
    """Every finding on the rendered issue and one composed message of it."""
    message = email.message_from_bytes(sample, policy=policy.default)
    html_part = message.get_body(("html",))
    text_part = message.get_body(("plain",))
    facts = _HtmlFacts()
    facts.feed(html_part.get_content() if html_part is not None else "")
    parts = {str(part["Content-ID"]).strip("<>") for part in message.walk() if part["Content-ID"]}
    findings = [
        *_size(len(rendered.html.encode())),
        *_headers(message),
        *_images(facts, parts),
        *_links_and_css(facts),
        *_leftovers("HTML", " ".join(facts.text)),
        *_leftovers("text", text_part.get_content() if text_part is not None else ""),
    ]
    return list(dict.fromkeys(findings))


def _size(size: int) -> list[Finding]:
    if size > GMAIL_CLIP_BYTES:
        return [
            Finding(
                Severity.ERROR, f"HTML is {size / 1024:.0f} KB: Gmail clips messages over 102 KB"
            )
        ]
    if size >= CLIP_WARNING_BYTES:
        return [
            Finding(
                Severity.WARNING,
                f"HTML is {size / 1024:.0f} KB, close to Gmail's 102 KB clip limit",
            )
        ]
    return []


def _headers(message: email.message.Message) -> list[Finding]:
    findings = []
    subject = str(message["Subject"] or "")
    if not subject.strip():
        findings.append(Finding(Severity.ERROR, "the subject is empty"))
    elif len(subject) > MAX_SUBJECT:
        findings.append(
            Finding(
                Severity.WARNING,
                f"the subject has {len(subject)} characters; over {MAX_SUBJECT} it is cut off",
            )
        )
    findings += [
        Finding(Severity.ERROR, f"the {header} header is missing")
        for header in ("List-Unsubscribe", "List-Unsubscribe-Post")
        if not message[header]
    ]
    return findings


def _images(facts: _HtmlFacts, parts: set[str]) -> list[Finding]:
    findings = [
        Finding(Severity.ERROR, f"image {image.get('src')} has no alt text")
        for image in facts.images
        if not (image.get("alt") or "").strip()
    ]
    sources = [image.get("src") or "" for image in facts.images]
    findings += [
        Finding(Severity.ERROR, f"image {src!r} is neither an inline cid: part nor an https URL")
        for src in sources
        if not src.startswith(("cid:", "https://"))
    ]
    referenced = {src.removeprefix("cid:") for src in sources if src.startswith("cid:")}
    findings += [
        Finding(Severity.ERROR, f"cid:{cid} has no image part")
        for cid in sorted(referenced - parts)
    ]
    findings += [
        Finding(Severity.ERROR, f"image part {cid} is never shown")
        for cid in sorted(parts - referenced)
    ]
    return findings


def _links_and_css(facts: _HtmlFacts) -> list[Finding]:
    findings = [
        Finding(Severity.ERROR, f"link {link!r} is not an absolute https or mailto link")
        for link in facts.links
        if not link.startswith(("https://", "mailto:"))
    ]
    findings += [
        Finding(
            Severity.WARNING,
            f"CSS uses {what}, which Gmail or Outlook drop: {style.strip()[:60]!r}",
        )
        for style in facts.styles
        for pattern, what in DROPPED_CSS
        if pattern.search(style)
    ]
    return findings


def _leftovers(part: str, visible: str) -> list[Finding]:
    match = LEFTOVERS.search(visible)
    if match is None:
        return []
    start = max(0, match.start() - 30)
    context = visible[start : match.end() + 30].strip()
    return [Finding(Severity.ERROR, f"{part} part shows {match.group()!r}: ...{context}...")]
