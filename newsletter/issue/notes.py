"""The editor's notes file for one issue: optional Subject:/Preheader: lines, then Markdown.

    Subject: Small caps' best week since 1987
    Preheader: What moved, and what to watch
    ---
    The note itself, in Markdown, with curated links:
    - [Title](https://example.com/article) - one line on why it matters

Everything before the `---` line is header fields (empty values are ignored); without a `---`
line the whole file is the note. HTML comments are dropped. Header lines end only at a line
break (LF, CRLF or CR), so another control character (VT, FF, NEL, ...) stays in its field's
value, where the build refuses it, rather than silently cutting the subject short.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEADER_END = "---"
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
FIELDS = ("subject", "preheader")

TEMPLATE = """\
Subject:
Preheader:
---
<!--
  The editor's note for the issue of the week to {as_of}, in Markdown, below this comment.
  Subject: and Preheader: above replace the generated ones when filled in (at most 250
  characters each, no tabs or control characters); leave them empty to keep the generated
  words. Scripts, images and links that are not https:// or mailto: are removed before
  anything reaches a reader. Nothing inside this comment is mailed, so an untouched draft
  sends no note. For example:

  A few sentences on what rotated this week and why it matters.

  ## Worth reading

  - [Article title](https://example.com/article) - one line on why it is worth the time
-->
"""


@dataclass(frozen=True, slots=True)
class EditorNotes:
    """What the editor wrote for one issue."""

    markdown: str = ""
    subject: str | None = None
    preheader: str | None = None


def parse_notes(text: str) -> EditorNotes:
    """Split a notes file into its header fields and its Markdown, without HTML comments (the
    template's guidance lives in one, and neither the HTML nor the text part may mail it)."""
    text = _COMMENT.sub("", text)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    end = next((i for i, line in enumerate(lines) if line.strip() == HEADER_END), None)
    if end is None:
        return EditorNotes(markdown="\n".join(text.splitlines()).strip())
    fields: dict[str, str] = {}
    for line in lines[:end]:
        name, _, value = line.partition(":")
        if name.strip().lower() in FIELDS and value.strip():
            fields[name.strip().lower()] = value.strip()
    return EditorNotes(
        markdown="\n".join("\n".join(lines[end + 1 :]).splitlines()).strip(),
        subject=fields.get("subject"),
        preheader=fields.get("preheader"),
    )
