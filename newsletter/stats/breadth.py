"""Breadth (equal weight against cap weight, sectors ranked) and the rates backdrop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from newsletter.stats.returns import StatsNotes, price_at, receipt
from newsletter.weekstats import Breadth, Rates, SectorReturn

if TYPE_CHECKING:
    import pandas as pd

    from newsletter.config import StatsSection
    from newsletter.models import Prices, ReportDates

BASIS_POINTS = 100.0
"""^TNX quotes the yield in percent: one percentage point is 100 basis points."""


def _week(series: pd.Series, dates: ReportDates) -> float | None:
    start, end = price_at(series, dates.prev_close), price_at(series, dates.as_of)
    return None if start is None or end is None else end / start - 1


def compute_breadth(
    prices: Prices,
    spec: StatsSection,
    dates: ReportDates,
    notes: StatsNotes,
    receipts: dict[str, Any],
) -> Breadth | None:
    """RSP - SPY over the week, and the sector SPDRs that have data ranked by weekly return."""
    equal = _week(prices.adjusted[spec.equal_weight], dates)
    cap = _week(prices.adjusted[spec.spread_short], dates)
    if equal is None or cap is None:
        notes.add(
            f"{spec.equal_weight} or {spec.spread_short} lacks this week's closes: breadth is left out"
        )
        return None
    sectors, missing = [], []
    for ticker in spec.sectors:
        week = _week(prices.adjusted[ticker], dates)
        if week is None:
            missing.append(ticker)
        else:
            sectors.append(SectorReturn(ticker, week))
    if missing and not sectors:
        notes.add(f"{', '.join(missing)} lack this week's closes: the sector ranking is left out")
    elif missing:
        notes.add(f"{', '.join(missing)} lack this week's closes: left out of the sector ranking")
    sectors.sort(key=lambda sector: sector.week, reverse=True)
    receipts["breadth"] = {
        ticker: receipt(prices.adjusted[ticker], "adj_close", dates.prev_close, dates.as_of)
        for ticker in [spec.equal_weight, spec.spread_short, *(s.ticker for s in sectors)]
    }
    return Breadth(
        equal_weight=spec.equal_weight,
        cap_weight=spec.spread_short,
        equal_minus_cap_week=equal - cap,
        sectors=tuple(sectors),
        beat_benchmark=sum(sector.week > cap for sector in sectors),
    )


def compute_rates(
    prices: Prices, ticker: str, dates: ReportDates, notes: StatsNotes, receipts: dict[str, Any]
) -> Rates | None:
    """The yield at the as-of session and its change since the previous week's close."""
    series = prices.raw[ticker]
    level, prev = price_at(series, dates.as_of), price_at(series, dates.prev_close)
    if level is None or prev is None:
        notes.add(f"{ticker} lacks this week's closes: the rates backdrop is left out")
        return None
    receipts["rates"] = receipt(series, "close", dates.prev_close, dates.as_of)
    return Rates(
        ticker=ticker, level=level, prev_level=prev, change_bp=(level - prev) * BASIS_POINTS
    )
