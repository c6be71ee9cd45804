"""A built issue, as the build hands it to the send, the review, the archive and the preview.

Kept apart from the build itself, so the use cases that take a built issue (a send, say) load
none of the libraries that make one (pandas, matplotlib).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from newsletter.issue.numbers import signed_pp
from newsletter.mail.lint import Finding, Severity
from newsletter.models import display_name

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from newsletter.models import RenderedIssue
    from newsletter.weekstats import WeekStats

WEB_PAGE = "web.html"
STATS_FILE = "stats.json"
TEXT_FILE = "email.txt"


@dataclass(frozen=True, slots=True)
class BuiltIssue:
    """A built issue: what is mailed, its numbers, and the folder holding its files."""

    stats: WeekStats
    rendered: RenderedIssue
    folder: Path
    files: Mapping[str, bytes]
    """What the build wrote into `folder`, by file name."""
    preheader: str
    findings: tuple[Finding, ...] = ()

    @property
    def content_sha256(self) -> str:
        """The digest of what subscribers get: a send freezes it, an approval names it."""
        digest = hashlib.sha256(self.rendered.subject.encode())
        digest.update(self.rendered.html.encode())
        digest.update(self.rendered.text.encode())
        for chart in self.rendered.images:
            digest.update(chart.png)
        return digest.hexdigest()

    @property
    def lint_errors(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.level is Severity.ERROR]

    def summary(self) -> list[str]:
        """A few lines that say which issue this is and what it leads with."""
        spread = self.stats.spread_5d_index or self.stats.spread_5d
        episode = (
            f"episode {spread.episode_rank:,} of {spread.episodes:,}"
            if spread.episode_rank is not None
            else f"inside the run of a larger window; window rank {spread.rank:,} of {spread.of:,}"
        )
        return [
            f"Issue {self.stats.as_of.isoformat()} (week since the close of "
            f"{self.stats.prev_close.isoformat()})",
            f"  Subject: {self.rendered.subject}",
            f"  {display_name(spread.long)} - {display_name(spread.short)}, 5 sessions: "
            f"{signed_pp(spread.value)} ({episode} since {spread.history_start.isoformat()})",
            f"  Draft:   {self.folder / 'preview.html'}",
        ]
