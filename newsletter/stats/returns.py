"""Period returns with receipts: close over close, from the session bases in ReportDates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import pandas as pd

from newsletter.errors import InsufficientDataError
from newsletter.weekstats import SCOREBOARD_PERIODS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from newsletter.models import Prices, ReportDates


@dataclass
class StatsNotes:
    """Plain-language notes on what the data could not support, for stats.json and the email."""

    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        if line not in self.lines:
            self.lines.append(line)


def price_at(series: pd.Series, session: date) -> float | None:
    """The close at `session`, or None when the data has none."""
    value = series.get(pd.Timestamp(session))
    return None if value is None or pd.isna(value) else float(value)


def require_price(series: pd.Series, session: date) -> float:
    """The close at `session`, or an error naming the ticker and session."""
    value = price_at(series, session)
    if value is None:
        raise InsufficientDataError(
            f"{series.name} has no price for session {session.isoformat()}, which this issue needs; "
            "pick another --as-of or repair the data"
        )
    return value


def period_return(series: pd.Series, start: date, end: date) -> float:
    """Close at `end` over close at `start`, minus 1 (both must exist)."""
    return require_price(series, end) / require_price(series, start) - 1


def receipt(series: pd.Series, field_name: str, start: date, end: date) -> dict[str, Any]:
    """The inputs of one return: ticker, price field, and the two sessions with their closes."""
    return {
        "ticker": series.name,
        "field": field_name,
        "from": [start.isoformat(), price_at(series, start)],
        "to": [end.isoformat(), price_at(series, end)],
    }


def period_bases(dates: ReportDates) -> dict[str, date]:
    return {
        "1W": dates.prev_close,
        "1M": dates.month_base,
        "3M": dates.quarter_base,
        "YTD": dates.ytd_base,
        "1Y": dates.year_base,
    }


def compute_returns(
    prices: Prices,
    tickers: Sequence[str],
    dates: ReportDates,
    notes: StatsNotes,
    receipts: dict[str, Any],
) -> dict[str, dict[str, float | None]]:
    """Total returns (adjusted closes) per ticker and period; null where a close is missing."""
    bases = period_bases(dates)
    table: dict[str, dict[str, float | None]] = {}
    table_receipts: dict[str, dict[str, Any]] = {}
    for ticker in tickers:
        series = prices.adjusted[ticker]
        end = price_at(series, dates.as_of)
        row: dict[str, float | None] = {}
        for period in SCOREBOARD_PERIODS:
            start = price_at(series, bases[period])
            row[period] = None if start is None or end is None else end / start - 1
            if start is None and end is not None:
                notes.add(
                    f"{ticker} has no close on {bases[period].isoformat()}: its {period} return is left out"
                )
        if end is None:
            notes.add(
                f"{ticker} has no close on {dates.as_of.isoformat()}: its returns are left out"
            )
        table[ticker] = row
        table_receipts[ticker] = {
            p: receipt(series, "adj_close", bases[p], dates.as_of) for p in SCOREBOARD_PERIODS
        }
    receipts["returns"] = table_receipts
    return table
