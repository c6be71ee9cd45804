"""The subject line and preheader, generated from the week's most notable statistic.

Rules, in order: a record 5-session spread (rank 1 over the whole history) leads with "record";
a spread that ranks in the top 1 % leads with "largest since <month year>"; otherwise the line
reports the scoreboard. Every number in these words is a figure from stats.json, rounded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from newsletter.models import display_name

if TYPE_CHECKING:
    from newsletter.models import WeekStats

TOP_PERCENTILE = 99.0


def _points(value: float) -> str:
    return f"{abs(value) * 100:.1f} points"


def write_headline(stats: WeekStats) -> tuple[str, str]:
    """(subject, preheader) for the issue; both plain text, escaped later by the templates."""
    spread = stats.spread_5d
    long_name, short_name = display_name(spread.long), display_name(spread.short)
    leader, laggard = (long_name, short_name) if spread.value >= 0 else (short_name, long_name)
    lead = f"{leader} beat the {laggard} by {_points(spread.value)} in five sessions"
    if spread.value > 0 and spread.rank == 1:
        subject = f"Record rotation: {lead}"
        detail = f"the widest gap since our data starts in {spread.history_start:%B %Y}"
    elif spread.value > 0 and spread.percentile >= TOP_PERCENTILE and spread.largest_since:
        subject = f"{lead}, the most since {spread.largest_since:%B %Y}"
        detail = f"rank {spread.rank} of {spread.of:,} five-session windows since {spread.history_start:%Y}"
    else:
        subject = f"Week to {stats.as_of.day} {stats.as_of:%b %Y}: {lead}"
        detail = f"rank {spread.rank} of {spread.of:,} five-session windows since {spread.history_start:%Y}"
    preheader = f"{lead}: {detail}. The scoreboard, the mega caps and the charts inside."
    return subject, preheader
