"""Relative strength: the long/short total-return ratio against its averages and 52-week range."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from newsletter.errors import InsufficientDataError
from newsletter.weekstats import RelativeStrength

if TYPE_CHECKING:
    from newsletter.models import Prices, ReportDates

SHORT_AVERAGE = 50
LONG_AVERAGE = 200
YEAR_SESSIONS = 252


def compute_relative_strength(
    prices: Prices, long: str, short: str, dates: ReportDates, receipts: dict[str, Any]
) -> RelativeStrength:
    """The ratio at the as-of session, its 50/200-session averages and its 52-week high and low.

    Windows count sessions, not closes: a session where either ticker has no close is a gap
    inside the window (left out of its mean, high and low), never a reason to reach further back.
    """
    sessions = prices.ratio(long, short)  # NaN where either has no close
    ratio = sessions.dropna()
    if len(ratio) < YEAR_SESSIONS or ratio.index[-1] != pd.Timestamp(dates.as_of):
        raise InsufficientDataError(
            f"{long}/{short} needs {YEAR_SESSIONS} sessions of history up to {dates.as_of.isoformat()}; "
            "pick a later --as-of"
        )
    base = pd.Timestamp(dates.prev_close)
    if base not in ratio.index:
        raise InsufficientDataError(
            f"{long} or {short} has no close on {dates.prev_close.isoformat()}, which the week's "
            "relative strength needs; pick another --as-of or repair the data"
        )
    year = sessions.iloc[-YEAR_SESSIONS:].dropna()
    now = float(ratio.iloc[-1])
    receipts["relative_strength"] = {
        "ratio": f"{long} adj_close / {short} adj_close",
        "at": [dates.as_of.isoformat(), now],
        "week_base": [dates.prev_close.isoformat(), float(ratio[base])],
        "averages_from": {
            str(n): pd.Timestamp(sessions.index[-n]).date().isoformat()
            for n in (SHORT_AVERAGE, LONG_AVERAGE)
        },
        "range_from": pd.Timestamp(sessions.index[-YEAR_SESSIONS]).date().isoformat(),
    }
    sma50 = float(sessions.iloc[-SHORT_AVERAGE:].mean())
    sma200 = float(sessions.iloc[-LONG_AVERAGE:].mean())
    return RelativeStrength(
        long=long,
        short=short,
        ratio=now,
        week_change=now / float(ratio[base]) - 1,
        sma50=sma50,
        sma200=sma200,
        vs_sma50=now / sma50 - 1,
        vs_sma200=now / sma200 - 1,
        high_52w=float(year.max()),
        high_52w_date=pd.Timestamp(year.index[int(year.to_numpy().argmax())]).date(),
        low_52w=float(year.min()),
        low_52w_date=pd.Timestamp(year.index[int(year.to_numpy().argmin())]).date(),
    )
