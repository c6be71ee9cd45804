"""Weekly rotation statistics: pure pandas, no I/O.

Rows of the price frames are NYSE sessions (app/data.py aligns them to the calendar), so a
5-row shift is a 5-session window and a gap in the data is a NaN, never a silently longer window.
No statistic looks past the as-of session: every frame is cut there first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from newsletter.stats.breadth import compute_breadth, compute_rates
from newsletter.stats.concentration import compute_concentration, member_tickers
from newsletter.stats.estimates import compute_estimates
from newsletter.stats.rarity import compute_rarities
from newsletter.stats.returns import StatsNotes, compute_returns, period_bases
from newsletter.stats.spread import compute_spread
from newsletter.stats.strength import compute_relative_strength
from newsletter.weekstats import WeekStats

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date

    from newsletter.config import StatsSection
    from newsletter.models import EstimateSnapshot, IndexWeights, Prices, ReportDates
    from newsletter.weekstats import EstimateRevision, KeyDate, SpreadStats

__all__ = ["compute_week_stats", "member_tickers", "required_tickers", "spec_tickers"]


def spec_tickers(spec: StatsSection) -> list[str]:
    """Every ticker the statistics may read, each once, in a stable order."""
    tickers = [
        *spec.scoreboard,
        *spec.long_indexes,
        spec.spread_long,
        spec.spread_short,
        spec.index_spread_long,
        spec.index_spread_short,
        spec.concentration_index,
        spec.equal_weight,
        *spec.sectors,
        spec.rates,
    ]
    for member in spec.megacaps:
        tickers.extend(member_tickers(member))
    return list(dict.fromkeys(tickers))


def required_tickers(spec: StatsSection) -> list[str]:
    """The tickers without which no issue can be built: the headline spread's pair."""
    return [spec.spread_long, spec.spread_short]


def _index_spread(
    prices: Prices,
    spec: StatsSection,
    dates: ReportDates,
    notes: StatsNotes,
    receipts: dict[str, object],
) -> SpreadStats | None:
    """The long-history index spread (^RUT - ^GSPC), when both have a close at the as-of."""
    pair = (spec.index_spread_long, spec.index_spread_short)
    if not all(pd.notna(prices.adjusted[t].get(pd.Timestamp(dates.as_of))) for t in pair):
        notes.add(
            f"{pair[0]} or {pair[1]} has no close on {dates.as_of}: the long-history spread is "
            "left out"
        )
        return None
    result = compute_spread(prices, *pair, dates.as_of, "price")
    receipts["spread_5d_index"] = result.receipt
    return result.stats


def _calendar_covers(
    events: Sequence[KeyDate], as_of: date, horizon: date, notes: StatsNotes
) -> bool:
    """Whether every kind of scheduled event is listed from before `as_of` through `horizon`;
    when not, a note for the editor says to what date the calendar runs."""
    if not events:
        notes.add("the key-date calendar is empty: the key dates are left out")
        return False
    first = min(event.day for event in events)
    last: dict[str, date] = {}
    for event in events:
        last[event.kind] = max(last.get(event.kind, event.day), event.day)
    short = [kind for kind, day in sorted(last.items()) if day < horizon]
    if first > as_of:
        notes.add(
            f"the key-date calendar starts on {first.isoformat()}, after this issue: "
            "the key dates are left out"
        )
        return False
    if short:
        ends = ", ".join(f"{kind} through {last[kind].isoformat()}" for kind in short)
        notes.add(
            f"the key-date calendar runs out before {horizon.isoformat()} ({ends}): dates after "
            "it are left out; add the agencies' new dates to newsletter/data/key_dates.csv (or "
            "to the file market.key_dates_file names)"
        )
        return False
    return True


def _estimates(
    estimates: Sequence[EstimateSnapshot], spec: StatsSection, dates: ReportDates, notes: StatsNotes
) -> tuple[tuple[EstimateRevision, ...], tuple[KeyDate, ...]]:
    """The estimate revisions and earnings dates, with a note for the editor when none."""
    revisions, earnings = compute_estimates(estimates, spec.megacaps, dates.as_of)
    if not revisions:
        notes.add(
            "no stored analyst estimates for this issue (market.provider: yfinance stores one "
            "each week): the indicator to watch is left out"
        )
    return revisions, earnings


def compute_week_stats(
    prices: Prices,
    dates: ReportDates,
    spec: StatsSection,
    *,
    weights: IndexWeights | None,
    events: Sequence[KeyDate],
    events_source: str,
    estimates: Sequence[EstimateSnapshot] = (),
) -> WeekStats:
    """All of the digest's numbers for the issue whose as-of session is `dates.as_of`."""
    cut = pd.Timestamp(dates.as_of)
    prices = type(prices)(prices.adjusted.loc[:cut], prices.raw.loc[:cut], prices.source)
    notes = StatsNotes()
    receipts: dict[str, object] = {}
    returns = compute_returns(
        prices, [*spec.scoreboard, *spec.long_indexes], dates, notes, receipts
    )
    spread = compute_spread(
        prices, spec.spread_long, spec.spread_short, dates.as_of, "total return"
    )
    receipts["spread_5d"] = spread.receipt
    index_spread = _index_spread(prices, spec, dates, notes, receipts)
    horizon = pd.Timestamp(dates.as_of) + pd.Timedelta(days=spec.key_dates_horizon_days)
    complete = _calendar_covers(events, dates.as_of, horizon.date(), notes)
    revisions, earnings = _estimates(estimates, spec, dates, notes)
    events = sorted([*events, *earnings], key=lambda event: (event.day, event.kind))
    return WeekStats(
        as_of=dates.as_of,
        bases={**period_bases(dates), "7D": dates.seven_days_base},
        returns=returns,
        spread_5d=spread.stats,
        spread_5d_index=index_spread,
        relative_strength=compute_relative_strength(
            prices, spec.spread_long, spec.spread_short, dates, receipts
        ),
        concentration=compute_concentration(
            prices, spec, weights, dates, notes=notes, receipts=receipts
        ),
        breadth=compute_breadth(prices, spec, dates, notes, receipts),
        rates=compute_rates(prices, spec.rates, dates, notes, receipts),
        key_dates=tuple(e for e in events if dates.as_of < e.day <= horizon.date()),
        key_dates_source=events_source,
        data_source=prices.source,
        notes=tuple(notes.lines),
        receipts=receipts,
        estimates=revisions,
        rarities=compute_rarities(prices, spec, dates.as_of),
        key_dates_complete=complete,
        key_dates_days=spec.key_dates_horizon_days,
        week_sessions=int(
            (
                (prices.adjusted.index > pd.Timestamp(dates.prev_close))
                & (prices.adjusted.index <= cut)
            ).sum()
        ),
    )
