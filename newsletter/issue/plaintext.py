"""The text/plain part made for a phone: the editor's Markdown as plain prose, and every line
wrapped to 78 characters (RFC 5322's advice), without ever breaking a URL or a word."""

from __future__ import annotations

import re
import textwrap
from typing import TYPE_CHECKING

from markdown_it import MarkdownIt

if TYPE_CHECKING:
    from markdown_it.token import Token

LINE = 78
LINK_SCHEMES = ("https:", "mailto:")
"""The links a note may carry (as in the HTML part); any other keeps its text, not its URL."""
_MARKDOWN = MarkdownIt("commonmark", {"html": True})
_LIST_ITEM = re.compile(r"^(\s*)((?:[-*]|\d+\.) )")
_ACTIVE_OPEN = re.compile(r"<(script|style)\b", re.IGNORECASE)
_ACTIVE_CLOSE = re.compile(r"</(script|style)\b", re.IGNORECASE)


_NUMBER_AND_UNIT = re.compile(r"(?<!\S)([+\u2212-]?\d[\d.,]*%?) (?=\S)")
_NBSP = "\u00a0"


def wrap_lines(text: str, width: int = LINE) -> str:
    """Every line of `text` at most `width` characters, where its words allow: a wrapped
    line keeps its indent, a list item's continuation lines hang under its text, a number
    stays with the word after it ("+9.97 pp", "+26.8% 1Y"), and a word longer than the line
    (a URL) stands alone on its line rather than being cut."""
    out: list[str] = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        kept = _NUMBER_AND_UNIT.sub(lambda found: found.group(1) + _NBSP, line)
        indent = len(kept) - len(kept.lstrip(" "))
        item = _LIST_ITEM.match(kept)
        hang = " " * (len(item.group(0)) if item else indent)
        out.extend(
            textwrap.wrap(
                kept[indent:],
                width=width,
                initial_indent=" " * indent,
                subsequent_indent=hang,
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return "\n".join(out).replace(_NBSP, " ")


def _inline(children: list[Token]) -> str:
    """One paragraph's words: emphasis dropped, a link as "text (url)", raw HTML left out."""
    words: list[str] = []
    links: list[str] = []
    hidden = False
    for token in children:
        if token.type == "html_inline":
            # A script or style inside a paragraph goes whole, its text too (as nh3 does).
            if _ACTIVE_OPEN.match(token.content):
                hidden = True
            elif _ACTIVE_CLOSE.match(token.content):
                hidden = False
        elif hidden:
            continue
        elif token.type in ("text", "code_inline"):
            words.append(token.content)
        elif token.type == "softbreak":
            words.append(" ")
        elif token.type == "hardbreak":
            words.append("\n")
        elif token.type == "link_open":
            links.append(str(token.attrs.get("href", "")))
            words.append("\x00")
        elif token.type == "link_close":
            href = links.pop()
            start = len(words) - 1 - words[::-1].index("\x00")
            label = "".join(words[start + 1 :])
            shown = href.startswith(LINK_SCHEMES) and href != label
            words[start:] = [f"{label} ({href})" if shown else label]
    return re.sub(" {2,}", " ", "".join(words))


def markdown_text(markdown: str) -> str:
    """The editor's Markdown as plain text: paragraphs apart, list items as "- " or "1. ",
    quotes as "> ", headings as their own line; HTML in the note (tags and scripts) removed."""
    blocks: list[tuple[str, int | None]] = []
    prefixes: list[str] = []
    numbers: list[int | None] = []
    pending = ""
    lists: list[int] = []
    for index, token in enumerate(_MARKDOWN.parse(markdown)):
        if token.type == "bullet_list_open":
            numbers.append(None)
            lists.append(index)
        elif token.type == "ordered_list_open":
            numbers.append(int(str(token.attrs.get("start", 1))))
            lists.append(index)
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            numbers.pop()
            lists.pop()
        elif token.type == "list_item_open":
            number = numbers[-1]
            pending = "- " if number is None else f"{number}. "
            if number is not None:
                numbers[-1] = number + 1
        elif token.type == "blockquote_open":
            prefixes.append("> ")
        elif token.type == "blockquote_close":
            prefixes.pop()
        elif token.type == "inline":
            lead = "".join(prefixes) + "  " * max(len(numbers) - 1, 0) + pending
            blocks.append(
                (lead + _inline(token.children or []).strip(), lists[0] if pending else None)
            )
            pending = ""
        elif token.type in ("fence", "code_block"):
            code = token.content.rstrip().split("\n")
            blocks.append(("\n".join("    " + line for line in code), None))
    return _join(blocks)


def _join(blocks: list[tuple[str, int | None]]) -> str:
    """Paragraphs separated by a blank line; the items of one list by a line break only."""
    text = ""
    previous: int | None = None
    for block, list_id in blocks:
        if text:
            text += "\n" if list_id is not None and list_id == previous else "\n\n"
        text += block
        previous = list_id
    return text
