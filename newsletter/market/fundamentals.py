"""Mega-cap fundamentals from Yahoo Finance: forward revenue estimates, the next earnings date and
shares outstanding.

The digest's "indicator to watch" is the revision of analysts' forward revenue estimates, which
only exists as history: each refresh stores a dated snapshot (db/estimates.py), and the statistics
compare snapshots 4 and 12 weeks apart. yfinance's `Ticker.revenue_estimate` is a frame indexed
by period ('0q', '+1q', '0y', '+1y') with columns avg, low, high, numberOfAnalysts,
yearAgoRevenue, growth; `Ticker.calendar` is a dict whose 'Earnings Date' is a list of dates.
Both are checked here, and anything else becomes a FetchError naming the ticker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from newsletter.errors import FetchError

ESTIMATE_PERIODS = ("0q", "+1q", "0y", "+1y")


@dataclass(frozen=True, slots=True)
class Fundamentals:
    """One ticker's forward revenue estimates (average, per period) and next earnings date."""

    ticker: str
    revenue: dict[str, float]
    analysts: dict[str, int]
    next_earnings: date | None
    shares: float | None = None


def _yfinance_ticker(symbol: str) -> Any:
    import yfinance  # noqa: PLC0415 (heavy, and only needed for live data)

    return yfinance.Ticker(symbol)


def parse_fundamentals(
    ticker: str, revenue: Any, calendar: Any, shares: Any = None
) -> Fundamentals:
    """Check yfinance's answers for one ticker and keep what the digest uses."""
    if not isinstance(revenue, pd.DataFrame) or revenue.empty or "avg" not in revenue.columns:
        raise FetchError(
            f"Yahoo has no revenue estimates for {ticker} (got {type(revenue).__name__})"
        )
    averages = pd.to_numeric(revenue["avg"], errors="coerce")
    counts = (
        pd.to_numeric(revenue["numberOfAnalysts"], errors="coerce")
        if "numberOfAnalysts" in revenue.columns
        else pd.Series(0, index=revenue.index)
    )
    estimates: dict[str, float] = {}
    analysts: dict[str, int] = {}
    for period in ESTIMATE_PERIODS:
        if period in averages.index and pd.notna(averages[period]):
            estimates[period] = float(averages[period])
            analysts[period] = 0 if pd.isna(counts[period]) else int(counts[period])
    if not estimates:
        raise FetchError(
            f"Yahoo's revenue estimates for {ticker} have none of the periods {', '.join(ESTIMATE_PERIODS)}"
        )
    upcoming = calendar.get("Earnings Date") if isinstance(calendar, dict) else None
    dates = sorted(day for day in upcoming or [] if isinstance(day, date))
    count = float(shares) if isinstance(shares, int | float) and shares > 0 else None
    return Fundamentals(ticker, estimates, analysts, dates[0] if dates else None, count)


class YahooFundamentals:
    """Fetches Fundamentals per ticker; the Ticker factory is injectable for tests."""

    def __init__(self, ticker: Callable[[str], Any] | None = None) -> None:
        self._ticker = ticker or _yfinance_ticker

    def fetch(self, symbol: str) -> Fundamentals:
        try:
            handle = self._ticker(symbol)
            revenue, calendar = handle.revenue_estimate, handle.calendar
            shares = handle.fast_info.get("shares")
        except Exception as err:  # yfinance raises whatever its HTTP stack raises
            raise FetchError(
                f"Yahoo fundamentals for {symbol} failed: {type(err).__name__}: {err}"
            ) from err
        return parse_fundamentals(symbol, revenue, calendar, shares)
