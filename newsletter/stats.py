"""Weekly rotation statistics: pure pandas, no I/O.

Rows of the price frames are NYSE sessions (the pipeline aligns them to the calendar), so a
5-row shift is a 5-session window and a gap in the data is a NaN, never a silently longer window.
No statistic looks past the as-of session: every frame is cut there first.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import pandas as pd

from newsletter.errors import InsufficientDataError
from newsletter.models import (
    Concentration,
    MemberContribution,
    PeriodReturns,
    SpreadStats,
    WeekStats,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from newsletter.models import IndexWeights, Prices, ReportDates

SPREAD_SESSIONS = 5


def _price_at(series: pd.Series, session: date) -> float:
    """The close at `session`, or a clear error naming the ticker and session when it is missing."""
    value = series.get(pd.Timestamp(session))
    if value is None or pd.isna(value):
        raise InsufficientDataError(
            f"{series.name} has no price for session {session.isoformat()}, which this issue needs; "
            "pick another --as-of or repair the data"
        )
    return float(value)


def period_return(series: pd.Series, start: date, end: date) -> float:
    """Close at `end` over close at `start`, minus 1."""
    return _price_at(series, end) / _price_at(series, start) - 1


def compute_returns(
    prices: Prices, tickers: Sequence[str], dates: ReportDates
) -> dict[str, PeriodReturns]:
    """Week, 1M and YTD total returns (adjusted closes) for each ticker."""
    returns = {}
    for ticker in tickers:
        series = prices.adjusted[ticker]
        returns[ticker] = PeriodReturns(
            week=period_return(series, dates.prev_close, dates.as_of),
            month=period_return(series, dates.month_base, dates.as_of),
            ytd=period_return(series, dates.ytd_base, dates.as_of),
        )
    return returns


def rolling_spread(prices: Prices, long: str, short: str, as_of: date) -> pd.Series:
    """The 5-session total-return spread long - short at every session up to `as_of`."""
    frame = prices.adjusted.loc[: pd.Timestamp(as_of), [long, short]]
    window = frame / frame.shift(SPREAD_SESSIONS) - 1
    return (window[long] - window[short]).dropna()


def compute_spread(prices: Prices, long: str, short: str, as_of: date) -> SpreadStats:
    """This week's 5-session spread, ranked against every full window in the common history."""
    spreads = rolling_spread(prices, long, short, as_of)
    stamp = pd.Timestamp(as_of)
    if stamp not in spreads.index:
        raise InsufficientDataError(
            f"{long} and {short} lack a full {SPREAD_SESSIONS}-session window ending {as_of.isoformat()}; "
            "pick another --as-of or repair the data"
        )
    value = float(spreads[stamp])
    earlier = spreads[spreads.index < stamp]
    at_least = earlier[earlier >= value]
    both = prices.adjusted[[long, short]].dropna()
    position = int(prices.adjusted.index.searchsorted(stamp))
    window_start = pd.Timestamp(prices.adjusted.index[position - SPREAD_SESSIONS])
    return SpreadStats(
        long=long,
        short=short,
        value=value,
        long_return=period_return(prices.adjusted[long], window_start.date(), as_of),
        short_return=period_return(prices.adjusted[short], window_start.date(), as_of),
        window_start=window_start.date(),
        rank=int((spreads > value).sum()) + 1,
        of=len(spreads),
        percentile=100.0 * float((spreads <= value).sum()) / len(spreads),
        largest_since=pd.Timestamp(at_least.index[-1]).date() if len(at_least) else None,
        history_start=pd.Timestamp(both.index[0]).date(),
    )


def member_tickers(member: str) -> tuple[str, ...]:
    """The tickers of one configured mega cap; 'GOOGL+GOOG' groups share classes of one company."""
    return tuple(member.split("+"))


def compute_concentration(
    prices: Prices,
    members: Sequence[str],
    index: str,
    weights: IndexWeights,
    dates: ReportDates,
) -> Concentration:
    """Each member's contribution w * r to the index's YTD price return, and its share of it.

    Weights are at the close of the YTD base session; returns are price returns (raw closes), as
    the index itself is a price index. A share-class group sums its classes' weights and
    contributions; its return is the weight-averaged one.
    """
    if weights.as_of != dates.ytd_base:
        raise InsufficientDataError(
            f"index weights are as of {weights.as_of.isoformat()}, but this issue's year starts "
            f"from {dates.ytd_base.isoformat()}; add a weights file for that date"
        )
    index_ytd = period_return(prices.raw[index], dates.ytd_base, dates.as_of)
    rows = []
    for member in members:
        tickers = member_tickers(member)
        weight = 0.0
        contribution = 0.0
        week_weighted = 0.0
        for ticker in tickers:
            if ticker not in weights.weights:
                raise InsufficientDataError(
                    f"{weights.source.split(',')[0]} has no weight for {ticker}; "
                    "remove it from stats.megacaps or add its weight"
                )
            w = weights.weights[ticker]
            weight += w
            contribution += w * period_return(prices.raw[ticker], dates.ytd_base, dates.as_of)
            week_weighted += w * period_return(prices.raw[ticker], dates.prev_close, dates.as_of)
        rows.append(
            MemberContribution(
                name=member,
                tickers=tickers,
                weight=weight,
                week=week_weighted / weight,
                ytd=contribution / weight,
                contribution=contribution,
                share=contribution / index_ytd,
            )
        )
    group = sum(row.contribution for row in rows)
    return Concentration(
        index=index,
        index_ytd=index_ytd,
        weights_as_of=weights.as_of,
        weights_source=weights.source,
        members=tuple(rows),
        group_contribution=group,
        group_share=group / index_ytd,
    )


def compute_week_stats(
    prices: Prices,
    dates: ReportDates,
    *,
    scoreboard: Sequence[str],
    spread_long: str,
    spread_short: str,
    megacaps: Sequence[str],
    concentration_index: str,
    weights: IndexWeights | None,
) -> WeekStats:
    """All of the digest's numbers for the issue whose as-of session is `dates.as_of`."""
    concentration = None
    note = None
    if weights is None:
        note = (
            f"No start-of-year index weights are bundled for {dates.as_of.year}, "
            "so mega-cap contributions cannot be computed for this issue."
        )
    else:
        concentration = compute_concentration(prices, megacaps, concentration_index, weights, dates)
    return WeekStats(
        as_of=dates.as_of,
        prev_close=dates.prev_close,
        month_base=dates.month_base,
        ytd_base=dates.ytd_base,
        returns=compute_returns(prices, scoreboard, dates),
        spread_5d=compute_spread(prices, spread_long, spread_short, dates.as_of),
        concentration=concentration,
        concentration_note=note,
        data_source=prices.source,
    )
