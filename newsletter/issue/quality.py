"""The data-quality gate that runs before every build: pure checks, no I/O.

A digest must never mail a wrong or stale number, so before any statistic is computed the
prices of the required tickers (the headline pair and the index the mega caps are measured
against) are checked for the issue's week: a close at the as-of session, no session of the
week missing, no one-day move beyond the sanity band (adjusted closes already account for
splits and dividends, so a bigger move is a data error or a real crash worth a human look),
and, for a live store, prices that reach the as-of session. The build refuses on any finding,
unless the editor allows it (`--allow-stale`), and then the email carries a visible warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Sequence

    from newsletter.models import Prices, ReportDates


@dataclass(frozen=True, slots=True)
class DataQuality:
    """The gate's verdict: what was checked, and each problem found, in words."""

    checked: tuple[str, ...]
    problems: tuple[str, ...]
    max_daily_move: float
    allowed: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": list(self.checked),
            "problems": list(self.problems),
            "max_daily_move": self.max_daily_move,
            "allowed_by_editor": self.allowed,
        }


def check_quality(
    prices: Prices,
    sessions: pd.DatetimeIndex,
    dates: ReportDates,
    tickers: Sequence[str],
    *,
    max_daily_move: float,
    stored_through: dict[str, date] | None = None,
) -> DataQuality:
    """Check `tickers` over the week (previous week's close to the as-of session)."""
    as_of, start = pd.Timestamp(dates.as_of), pd.Timestamp(dates.prev_close)
    week = sessions[(sessions >= start) & (sessions <= as_of)]
    problems: list[str] = []
    for ticker in tickers:
        series = prices.adjusted[ticker] if ticker in prices.adjusted else pd.Series(dtype=float)
        through = (stored_through or {}).get(ticker)
        if through is not None and through < dates.as_of:
            problems.append(
                f"{ticker}: the store ends {through.isoformat()}, before the as-of session {dates.as_of}"
            )
        missing = [day.date().isoformat() for day in week if pd.isna(series.get(day))]
        if missing:
            problems.append(f"{ticker}: no close on {', '.join(missing)} (this week)")
            continue
        moves = series.reindex(week).pct_change().dropna()
        big = moves[moves.abs() > max_daily_move]
        for day, move in zip(pd.DatetimeIndex(big.index), big.to_numpy(), strict=True):
            problems.append(
                f"{ticker}: moved {move * 100:+.1f}% on {day.date().isoformat()}, "
                f"beyond the ±{max_daily_move * 100:.0f}% sanity band"
            )
    return DataQuality(
        checked=tuple(tickers), problems=tuple(problems), max_daily_move=max_daily_move
    )
