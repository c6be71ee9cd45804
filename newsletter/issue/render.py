"""Jinja rendering of an Issue into HTML (CSS inlined) and plain text; pure strings, no files.

Autoescape is on for every template except the text/plain one, and undefined variables fail
loudly (StrictUndefined) so a template mistake breaks the build, not a subscriber's inbox.
Numbers are formatted by the filters registered here, in one place.
"""

from __future__ import annotations

import functools
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import css_inline
import jinja2
import markupsafe
import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

from newsletter.errors import RenderError
from newsletter.issue.lede import story_of
from newsletter.issue.numbers import (
    long_date,
    month,
    plain_pct,
    signed_bp,
    signed_pct,
    signed_pp,
    thousands,
)
from newsletter.issue.plaintext import markdown_text, wrap_lines
from newsletter.models import UNSUBSCRIBE_MARKER, RenderedIssue, display_name

if TYPE_CHECKING:
    from newsletter.models import Chart, Issue

HTML_TEMPLATE = "issue.html.j2"
TEXT_TEMPLATE = "issue.txt.j2"

ImageMode = Literal["cid", "hosted", "file"]
"""How the HTML finds its charts: inline parts (cid:), https URLs beside the archived issue, or
sibling files (the local preview)."""


def make_environment(template_dir: Path) -> jinja2.Environment:
    """The Jinja environment over `template_dir`, with the digest's filters: made once per
    folder and kept, so each template is compiled once (Jinja checks a template file's
    modification time whenever it is used, so an edited one is compiled again)."""
    if not template_dir.is_dir():
        raise RenderError(
            f"template folder {template_dir} not found (set templates.dir in config.yaml)"
        )
    return _environment(template_dir.resolve())


@functools.lru_cache(maxsize=16)
def _environment(template_dir: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html.j2", "html"),
            disabled_extensions=("txt.j2",),
            default=True,
        ),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        signed_pct=signed_pct,
        pct=plain_pct,
        pp=signed_pp,
        bp=signed_bp,
        month=month,
        long_date=long_date,
        thousands=thousands,
        note_text=markdown_text,
        name=display_name,
        keep_ranges=keep_ranges,
    )
    return env


_DAY_RANGE = re.compile(r"\b([A-Z][a-z]{2} \d{1,2})-((?:[A-Z][a-z]{2} )?\d{1,2})\b")


def keep_ranges(text: str) -> Markup:
    """`text` escaped, each day range ("Jul 30-31") with an en dash and kept on one line:
    a line break after its hyphen leaves "Jul 30-" on one line and "31" on the next."""
    escaped = str(markupsafe.escape(text))
    return Markup(
        _DAY_RANGE.sub(
            lambda day: f'<span class="nowrap">{day.group(1)}\u2013{day.group(2)}</span>', escaped
        )
    )


def render_page(env: jinja2.Environment, name: str, **context: object) -> str:
    """Render one template; a missing template or a template error becomes a RenderError."""
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateNotFound as err:
        raise RenderError(f"template '{err.name}' not found in {env.loader.searchpath}") from err  # type: ignore[union-attr]
    except jinja2.TemplateError as err:
        where = (
            f"{err.filename}:{err.lineno}" if isinstance(err, jinja2.TemplateSyntaxError) else name
        )
        raise RenderError(f"template {where}: {err.message}") from err


def image_src(chart: Chart, mode: ImageMode, web_url: str) -> str:
    """Where the HTML loads `chart` from: an inline part, the issue's archived page
    (`web_url`, where `newsletter serve` publishes the charts), or a file beside the page."""
    if mode == "cid":
        return f"cid:{chart.content_id}"
    if mode == "hosted":
        return f"{web_url}{chart.filename}"
    return chart.filename


_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
_MARKDOWN = MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False})
NOTE_TAGS = {"p", "a", "strong", "em", "ul", "ol", "li", "blockquote", "code", "br", "h3", "h4"}
NOTE_LINK_SCHEMES = {"https", "mailto"}


def render_note(markdown: str) -> str:
    """The editor's Markdown as HTML that is safe to mail: sanitised (nh3) down to simple
    formatting and https/mailto links; scripts, event handlers and images are removed whole."""
    html = _MARKDOWN.render(markdown)
    return nh3.clean(
        html,
        tags=NOTE_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes=NOTE_LINK_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


class _NoteParts(HTMLParser):
    """The links, images and active elements of a piece of HTML."""

    ACTIVE = frozenset({"script", "style", "iframe", "object", "embed", "form"})

    def __init__(self, html: str) -> None:
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []
        self.active: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.links.append(str(values["href"]))
        elif tag == "img":
            self.images.append(str(values.get("src") or ""))
        elif tag in self.ACTIVE:
            self.active.append(tag)


def dropped_from_note(markdown: str) -> list[str]:
    """What the sanitiser removes from the editor's note, each with the reason, so the editor
    is told instead of finding a link that goes nowhere."""
    written, kept = _NoteParts(_MARKDOWN.render(markdown)), _NoteParts(render_note(markdown))
    dropped = [
        f"link '{href}' was removed: only https:// and mailto: links reach readers"
        for href in written.links
        if href not in kept.links
    ]
    dropped += [
        f"image '{src}' was removed: the note carries text and links only" for src in written.images
    ]
    dropped += [
        f"a <{tag}> was removed: the note carries text and links only" for tag in written.active
    ]
    return dropped


def render_html(
    issue: Issue,
    env: jinja2.Environment,
    images: ImageMode,
    *,
    web_version: bool = False,
) -> str:
    """The issue as one HTML page with inlined CSS, its charts found as `images` says.

    The email links to its web version; the web version itself (`web_version`) does not.
    """
    charts = {chart.name: chart for chart in issue.charts}
    html = render_page(
        env,
        HTML_TEMPLATE,
        note_html=Markup(render_note(issue.note)) if issue.note else None,
        issue=issue,
        stats=issue.stats,
        story=story_of(issue.stats),
        charts=charts,
        image_src=lambda chart: image_src(chart, images, issue.web_url),
        unsubscribe_url=UNSUBSCRIBE_MARKER,
        web_version=web_version,
    )
    try:
        return _INLINER.inline(html)
    except (css_inline.InlineError, ValueError) as err:
        raise RenderError(f"CSS inlining failed for {HTML_TEMPLATE}: {err}") from err


def render_issue(issue: Issue, env: jinja2.Environment, images: ImageMode = "cid") -> RenderedIssue:
    """The issue as it is mailed: the HTML (charts as inline cid: parts, or linked from the
    issue's archived page when `images` is "hosted"), and the text part."""
    text = wrap_lines(
        render_page(
            env,
            TEXT_TEMPLATE,
            issue=issue,
            stats=issue.stats,
            story=story_of(issue.stats),
            charts={chart.name: chart for chart in issue.charts},
            unsubscribe_url=UNSUBSCRIBE_MARKER,
        )
    )
    return RenderedIssue(
        as_of=issue.stats.as_of,
        subject=issue.subject,
        html=render_html(issue, env, images),
        text=text,
        images=issue.charts if images == "cid" else (),
    )
