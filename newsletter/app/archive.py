"""The archive of sent issues: keeping each issue as it was sent, for `newsletter serve`."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from newsletter.app.built import STATS_FILE, TEXT_FILE, WEB_PAGE
from newsletter.app.files import write_folder
from newsletter.issue.archive import META_FILE, PAGE_FILE

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from newsletter.app.built import BuiltIssue
    from newsletter.config import Config

logger = logging.getLogger(__name__)


def archive_issue(config: Config, built: BuiltIssue, now: datetime) -> Path:
    """Keep the issue as sent in archive/<as-of>/: the web page (index.html), the text, the
    numbers and the charts, for `newsletter serve` (issue pages, the feed, hosted images).

    Called once the send has frozen the content, so the archive holds what subscribers got;
    sending again keeps the first archiving time. issue.json is written last: the index lists
    an issue only once all its files are in place.
    """
    folder = config.archive_dir / built.stats.as_of.isoformat()
    try:
        earlier = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        earlier = {}
    if earlier.get("content_sha256") == built.content_sha256:
        return folder
    names = {WEB_PAGE: PAGE_FILE, TEXT_FILE: TEXT_FILE, STATS_FILE: STATS_FILE}
    names.update({name: name for name in built.files if name.endswith(".png")})
    meta = {
        "as_of": built.stats.as_of.isoformat(),
        "subject": built.rendered.subject,
        "preheader": built.preheader,
        "archived_at": earlier.get("archived_at", now.isoformat()),
        "content_sha256": built.content_sha256,
    }
    write_folder(
        folder,
        {
            **{target: built.files[source] for source, target in names.items()},
            META_FILE: (json.dumps(meta, indent=2) + "\n").encode(),
        },
    )
    logger.info("Archived issue %s in %s", meta["as_of"], folder)
    return folder
