"""How unusual was the week: the 5-session spread long - short, ranked over its whole history.

Two rankings: every overlapping window (rank, percentile, z-score, "largest since"), and
episodes, where a run of overlapping windows counts once at its peak. Episodes are what a
reader means by "the largest five-day outperformance since 1987": the days after a record week
are not new records of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from newsletter.errors import InsufficientDataError
from newsletter.stats.returns import period_return, receipt
from newsletter.weekstats import Aftermath, SpreadStats

if TYPE_CHECKING:
    from newsletter.models import Prices

SPREAD_SESSIONS = 5
TOP_EPISODES = 5
AFTERMATH_SESSIONS = (21, 63)


@dataclass(frozen=True, slots=True)
class SpreadResult:
    stats: SpreadStats
    receipt: dict[str, Any]


def episode_peaks(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Indices of episode peaks: greedily, largest first, each window that overlaps no peak.

    Two 5-session windows overlap when their end sessions are fewer than 5 sessions apart.
    """
    order = np.argsort(-values, kind="stable")
    blocked = np.zeros(int(positions.max()) + SPREAD_SESSIONS + 1, dtype=bool)
    peaks = []
    for i in order:
        position = int(positions[i])
        if blocked[position]:
            continue
        peaks.append(i)
        blocked[max(0, position - SPREAD_SESSIONS + 1) : position + SPREAD_SESSIONS] = True
    return np.array(peaks, dtype=int)


def compute_spread(prices: Prices, long: str, short: str, as_of: date, basis: str) -> SpreadResult:
    """This week's 5-session spread, ranked against every full window up to `as_of`."""
    spreads = prices.spread(long, short, SPREAD_SESSIONS)
    stamp = pd.Timestamp(as_of)
    if len(spreads) < 2 or spreads.index[-1] != stamp:
        raise InsufficientDataError(
            f"{long} and {short} lack a full {SPREAD_SESSIONS}-session window ending {as_of.isoformat()}; "
            "pick another --as-of or repair the data"
        )
    values = spreads.to_numpy()
    value = float(values[-1])
    positions = prices.adjusted.index.get_indexer(spreads.index)
    now = int(positions[-1])
    window_start = pd.Timestamp(prices.adjusted.index[now - SPREAD_SESSIONS]).date()

    earlier_at_least = np.flatnonzero(values[:-1] >= value)
    both = prices.adjusted[[long, short]].dropna()
    stats = SpreadStats(
        long=long,
        short=short,
        basis=basis,
        value=value,
        long_return=period_return(prices.adjusted[long], window_start, as_of),
        short_return=period_return(prices.adjusted[short], window_start, as_of),
        window_start=window_start,
        rank=int((values > value).sum()) + 1,
        of=len(values),
        percentile=100.0 * float((values <= value).sum()) / len(values),
        zscore=float((value - values.mean()) / values.std(ddof=1)),
        largest_since=(
            pd.Timestamp(spreads.index[earlier_at_least[-1]]).date()
            if len(earlier_at_least)
            else None
        ),
        history_start=pd.Timestamp(both.index[0]).date(),
        **_episodes(prices, spreads, positions, long, short),
    )
    return SpreadResult(stats=stats, receipt=_receipt(prices, stats, spreads))


def _episodes(
    prices: Prices, spreads: pd.Series, positions: np.ndarray, long: str, short: str
) -> dict[str, Any]:
    """The episode fields of SpreadStats for the last window of `spreads`."""
    values = spreads.to_numpy()
    value, now = float(values[-1]), int(positions[-1])
    # The earlier windows this one overlaps: when one is at least as large, this window is
    # part of that run, not a new episode (and no record or "most since" of its own).
    overlapping = (positions > now - SPREAD_SESSIONS) & (positions < now)
    new_episode = not bool((values[overlapping] >= value).any())
    outside = positions <= now - SPREAD_SESSIONS  # windows not overlapping this week's
    peaks = episode_peaks(values[outside], positions[outside])
    peak_values = values[outside][peaks]
    bigger_or_equal = spreads.index[outside][peaks][peak_values >= value]
    largest = [(int(positions[outside][i]), float(values[outside][i])) for i in peaks]
    return {
        "episode_rank": int((peak_values > value).sum()) + 1 if new_episode else None,
        "episodes": len(peaks) + 1
        if new_episode
        else len(episode_peaks(values[:-1], positions[:-1])),
        "episode_largest_since": pd.Timestamp(bigger_or_equal.max()).date()
        if len(bigger_or_equal) and new_episode
        else None,
        "top_episodes": tuple(
            (pd.Timestamp(spreads.index[i]).date(), float(values[i]))
            for i in episode_peaks(values, positions)[:TOP_EPISODES]
        ),
        "new_episode": new_episode,
        "aftermath": _aftermath(prices, long, short, largest[:TOP_EPISODES], now),
    }


def _aftermath(
    prices: Prices, long: str, short: str, episodes: list[tuple[int, float]], now: int
) -> tuple[Aftermath, ...]:
    """For each earlier episode (its end's row position and its value), the spread over the
    next 21 and 63 sessions, from the rows up to the as-of session only (`now`)."""
    rows = prices.adjusted.index
    later = {n: prices.spread(long, short, n).reindex(rows).to_numpy() for n in AFTERMATH_SESSIONS}

    def following(end: int, sessions: int) -> float | None:
        target = end + sessions
        if target > now:
            return None  # incomplete: its window runs past the as-of session
        value = float(later[sessions][target])
        return None if np.isnan(value) else value

    return tuple(
        Aftermath(
            end=pd.Timestamp(rows[end]).date(),
            value=value,
            next_21=following(end, AFTERMATH_SESSIONS[0]),
            next_63=following(end, AFTERMATH_SESSIONS[1]),
        )
        for end, value in episodes
    )


def _receipt(prices: Prices, stats: SpreadStats, spreads: pd.Series) -> dict[str, Any]:
    """The inputs of the spread and of the distribution it is ranked in."""
    values = spreads.to_numpy()
    start, end = stats.window_start, pd.Timestamp(spreads.index[-1]).date()
    return {
        "long": receipt(prices.adjusted[stats.long], "adj_close", start, end),
        "short": receipt(prices.adjusted[stats.short], "adj_close", start, end),
        "distribution": {
            "windows": len(values),
            "first_window_end": pd.Timestamp(spreads.index[0]).date().isoformat(),
            "last_window_end": end.isoformat(),
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)),
            "episode_separation_sessions": SPREAD_SESSIONS,
        },
    }
