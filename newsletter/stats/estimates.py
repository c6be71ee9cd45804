"""The indicator to watch: revisions of forward revenue estimates from stored weekly snapshots."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

from newsletter.models import display_name
from newsletter.stats.concentration import member_tickers
from newsletter.weekstats import EstimateRevision, KeyDate

if TYPE_CHECKING:
    from collections.abc import Sequence

    from newsletter.models import EstimateSnapshot

FORWARD_PERIODS = ("+1y", "0y")
"""The next fiscal year's estimate, or the current one where the next is not published yet."""
SPANS = (timedelta(weeks=4), timedelta(weeks=12))


def _on_or_before(snapshots: list[EstimateSnapshot], day: date) -> EstimateSnapshot | None:
    earlier = [snap for snap in snapshots if snap.taken_on <= day]
    return earlier[-1] if earlier else None


def compute_estimates(
    history: Sequence[EstimateSnapshot], members: Sequence[str], as_of: date
) -> tuple[tuple[EstimateRevision, ...], tuple[KeyDate, ...]]:
    """Each member's latest forward revenue estimate and its change over 4 and 12 weeks, and
    the next earnings dates the latest snapshots know; only snapshots up to `as_of` count."""
    revisions, earnings = [], []
    for member in members:
        ticker = member_tickers(member)[0]  # share classes report one company's revenue
        mine = [snap for snap in history if snap.ticker == ticker and snap.taken_on <= as_of]
        for period in FORWARD_PERIODS:
            series = [snap for snap in mine if snap.period == period]
            if not series:
                continue
            latest = series[-1]
            changes = []
            for span in SPANS:
                base = _on_or_before(series, as_of - span)
                changes.append(None if base is None else latest.revenue_avg / base.revenue_avg - 1)
            revisions.append(
                EstimateRevision(
                    member, period, latest.revenue_avg, latest.taken_on, changes[0], changes[1]
                )
            )
            if latest.next_earnings is not None and latest.next_earnings > as_of:
                earnings.append(
                    KeyDate(
                        latest.next_earnings, "Earnings", f"{display_name(member)} reports earnings"
                    )
                )
            break
    return tuple(revisions), tuple(earnings)
