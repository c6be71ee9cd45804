"""The archive of sent issues as `newsletter serve` publishes it: the list and the Atom feed.

Each sent issue lives in archive/<as-of>/ (written by app/archive.py when its send starts):
index.html (the web version), email.txt, stats.json, the chart PNGs and issue.json, which
names it. Only a folder with a readable issue.json counts as an issue.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from xml.etree import ElementTree as ET

logger = logging.getLogger(__name__)

ATOM_NS = "http://www.w3.org/2005/Atom"
META_FILE = "issue.json"
PAGE_FILE = "index.html"
_AS_OF = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FILE = re.compile(r"^[a-z0-9_\-]+\.(html|png|txt|json)$")
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "png": "image/png",
    "txt": "text/plain; charset=utf-8",
    "json": "application/json",
}


@dataclass(frozen=True, slots=True)
class ArchivedIssue:
    """One sent issue in the archive."""

    as_of: date
    subject: str
    preheader: str
    archived_at: datetime
    folder: Path

    def url(self, base_url: str) -> str:
        return f"{base_url}/issues/{self.as_of.isoformat()}/"


def _read(folder: Path) -> ArchivedIssue | None:
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        return ArchivedIssue(
            as_of=date.fromisoformat(meta["as_of"]),
            subject=str(meta["subject"]),
            preheader=str(meta["preheader"]),
            archived_at=datetime.fromisoformat(meta["archived_at"]),
            folder=folder,
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        logger.warning("archive folder %s skipped: unreadable %s (%s)", folder, META_FILE, err)
        return None


def list_archive(root: Path) -> list[ArchivedIssue]:
    """Every archived issue, newest first."""
    if not root.is_dir():
        return []
    found = [_read(folder) for folder in root.iterdir() if _AS_OF.match(folder.name)]
    return sorted(
        (issue for issue in found if issue is not None),
        key=lambda issue: issue.as_of,
        reverse=True,
    )


def read_archived_file(root: Path, as_of: str, name: str) -> bytes | None:
    """The bytes of issue `as_of`'s archived file `name`, or None: both parts must look like
    what the archive writes, and only a regular file directly inside a real folder of the
    archive is read; a symbolic link (the folder or the file) is never followed, so nothing
    placed in the archive can expose a file outside it."""
    if not _AS_OF.match(as_of) or not _FILE.match(name):
        return None
    nofollow = os.O_RDONLY | os.O_NOFOLLOW
    try:
        folder = os.open(root / as_of, nofollow | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.stat(META_FILE, dir_fd=folder, follow_symlinks=False).st_mode):
            return None
        handle = os.open(name, nofollow | os.O_NONBLOCK, dir_fd=folder)  # a FIFO must not block
    except OSError:
        return None
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(handle).st_mode):
        os.close(handle)
        return None
    with os.fdopen(handle, "rb") as file:
        return file.read()


def atom_feed(issues: list[ArchivedIssue], *, title: str, base_url: str, author: str) -> bytes:
    """An Atom 1.0 feed (RFC 4287) of `issues`, each entry linking to its web version."""
    ET.register_namespace("", ATOM_NS)

    def add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        element.text = text
        return element

    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    add(feed, "id", f"{base_url}/")
    add(feed, "title", title)
    add(feed, "link", rel="alternate", type="text/html", href=f"{base_url}/")
    add(feed, "link", rel="self", type="application/atom+xml", href=f"{base_url}/feed.atom")
    newest = max((issue.archived_at for issue in issues), default=datetime(2000, 1, 1, tzinfo=UTC))
    add(feed, "updated", newest.isoformat())
    add(add(feed, "author"), "name", author)
    for issue in issues:
        entry = add(feed, "entry")
        add(entry, "id", issue.url(base_url))
        add(entry, "title", issue.subject)
        add(entry, "link", rel="alternate", type="text/html", href=issue.url(base_url))
        add(entry, "updated", issue.archived_at.isoformat())
        add(entry, "published", issue.archived_at.isoformat())
        add(entry, "summary", issue.preheader)
    document: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return document
