"""How unusual each of the week's moves is against its own history, so the headline can lead
with the rarest fact rather than a fixed order.

Every move is measured over the same five sessions as the headline spread (the window ending
at the as-of session) and compared with every earlier five-session window of the same series:
a fund's or stock's return, a pair's return spread, the 10-year yield's change in basis
points. `tail` is the share of all windows (this one included) at least as extreme in this
move's direction; `largest_since` the end of the latest earlier window at least as extreme,
and only when this window is a new episode (none of the four earlier windows it overlaps is
as extreme), because a window inside the run of a bigger one is not news of its own.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from newsletter.stats.concentration import member_tickers
from newsletter.weekstats import Rarity

if TYPE_CHECKING:
    from newsletter.config import StatsSection
    from newsletter.models import Prices

SESSIONS = 5
MIN_WINDOWS = 250
"""A move needs about a year of earlier windows before its rarity means anything."""


def _rarity(kind: str, subject: str, windows: pd.Series, as_of: date) -> Rarity | None:
    """The last window of `windows` (indexed by end session) against all of them."""
    windows = windows.dropna()
    if len(windows) < MIN_WINDOWS or windows.index[-1] != pd.Timestamp(as_of):
        return None
    values = windows.to_numpy()
    value = float(values[-1])
    sign = 1.0 if value >= 0 else -1.0
    signed = values * sign
    earlier = signed[:-1]
    as_extreme = np.flatnonzero(earlier >= signed[-1])
    new_episode = not bool((earlier[-(SESSIONS - 1) :] >= signed[-1]).any())
    return Rarity(
        kind=kind,
        subject=subject,
        value=value,
        sessions=SESSIONS,
        tail=float((signed >= signed[-1]).sum()) / len(signed),
        rank=int((signed > signed[-1]).sum()) + 1,
        of=len(signed),
        history_start=pd.Timestamp(windows.index[0]).date(),
        new_episode=new_episode,
        largest_since=(
            pd.Timestamp(windows.index[as_extreme[-1]]).date()
            if len(as_extreme) and new_episode
            else None
        ),
    )


def _returns(prices: Prices, ticker: str, raw: bool = False) -> pd.Series:
    frame = prices.raw if raw else prices.adjusted
    column: pd.Series = frame[ticker]
    return column / column.shift(SESSIONS) - 1


def compute_rarities(prices: Prices, spec: StatsSection, as_of: date) -> tuple[Rarity, ...]:
    """Each candidate move of the week with its rarity, rarest first (ties: the order here,
    the headline spread first)."""
    candidates: list[Rarity | None] = []
    for long, short, kind in (
        (spec.index_spread_long, spec.index_spread_short, "spread"),
        (spec.spread_long, spec.spread_short, "spread"),
        (spec.equal_weight, spec.spread_short, "breadth"),
    ):
        if long in prices.tickers and short in prices.tickers:
            spread = prices.spread(long, short, SESSIONS)
            candidates.append(_rarity(kind, f"{long}-{short}", spread, as_of))
    for member in spec.megacaps:
        ticker = member_tickers(member)[0]
        if ticker in prices.tickers:
            candidates.append(_rarity("megacap", member, _returns(prices, ticker, raw=True), as_of))
    for sector in spec.sectors:
        if sector in prices.tickers:
            candidates.append(_rarity("sector", sector, _returns(prices, sector), as_of))
    if spec.rates in prices.tickers:
        level = prices.raw[spec.rates]
        change_bp = (level - level.shift(SESSIONS)) * 100
        candidates.append(_rarity("yield", spec.rates, change_bp, as_of))
    found = [c for c in candidates if c is not None]
    return tuple(sorted(found, key=lambda rarity: rarity.tail))
