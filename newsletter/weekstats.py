"""The week's statistics as typed values, and their stats.json form; no I/O, no pandas.

stats.json is a contract other tools read: keys are added, never renamed. Returns, weights and
spreads are fractions (0.0163 means 1.63 %); rate changes are in basis points; dates are ISO.
A figure the data cannot support is null, and `notes` says why.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date
from typing import Any

SCOREBOARD_PERIODS = ("1W", "1M", "3M", "YTD", "1Y")
"""The scoreboard's periods, in the order the email shows them."""


@dataclass(frozen=True, slots=True)
class Aftermath:
    """What followed one earlier episode: the same spread over the next 21 and 63 sessions
    after its end; null where that window runs past the as-of session (never filled from
    later data)."""

    end: date
    value: float
    next_21: float | None
    next_63: float | None


@dataclass(frozen=True, slots=True)
class SpreadStats:
    """The rolling 5-session return spread long - short ending at the as-of session.

    `rank`/`percentile`/`largest_since` count every overlapping window; the `episode_*` fields
    count a run of overlapping windows once (its peak), which is what "the largest since" means
    to a reader. This week's window is a `new_episode` only when none of the earlier windows
    it overlaps is at least as large; otherwise it belongs to their run, and `episode_rank`
    and `episode_largest_since` are null (only the window-level figures describe it).
    `aftermath`: the five largest earlier episodes that end before this week's window starts.
    """

    long: str
    short: str
    basis: str
    value: float
    long_return: float
    short_return: float
    window_start: date
    rank: int
    of: int
    percentile: float
    zscore: float
    largest_since: date | None
    history_start: date
    episode_rank: int | None
    episodes: int
    episode_largest_since: date | None
    top_episodes: tuple[tuple[date, float], ...]
    new_episode: bool = True
    aftermath: tuple[Aftermath, ...] = ()


@dataclass(frozen=True, slots=True)
class Rarity:
    """How unusual one five-session move of the week is against its own history.

    `kind`: spread (a long-short pair), breadth (equal minus cap weight), megacap, sector or
    yield (`value` in basis points; the others are fractions). `tail`: the share of all
    windows, this one included, at least as extreme in this move's direction; `rank` 1 is the
    most extreme. `largest_since`: the end of the latest earlier window at least as extreme,
    null when there is none or when this window is not a `new_episode`.
    """

    kind: str
    subject: str
    value: float
    sessions: int
    tail: float
    rank: int
    of: int
    history_start: date
    new_episode: bool
    largest_since: date | None


@dataclass(frozen=True, slots=True)
class RelativeStrength:
    """The long/short total-return ratio against its moving averages and 52-week range."""

    long: str
    short: str
    ratio: float
    week_change: float
    sma50: float
    sma200: float
    vs_sma50: float
    vs_sma200: float
    high_52w: float
    high_52w_date: date
    low_52w: float
    low_52w_date: date


@dataclass(frozen=True, slots=True)
class MemberContribution:
    """One mega cap (or share-class group) and its part of the index's YTD return."""

    name: str
    tickers: tuple[str, ...]
    weight: float
    week: float
    seven_day: float
    ytd: float
    contribution: float
    share: float


@dataclass(frozen=True, slots=True)
class Concentration:
    """Mega caps' contribution to the index's YTD price return from start-of-year weights.

    `lead` is the member with the largest share; the `others_*` means are equal-weighted over
    the rest, as the article compares Nvidia with "the other stocks".
    """

    index: str
    index_ytd: float
    weights_as_of: date
    weights_source: str
    members: tuple[MemberContribution, ...]
    group_contribution: float
    group_share: float
    lead: str
    others_seven_day_mean: float
    others_ytd_mean: float


@dataclass(frozen=True, slots=True)
class SectorReturn:
    ticker: str
    week: float


@dataclass(frozen=True, slots=True)
class Breadth:
    """Equal weight against cap weight, and the sector SPDRs ranked by the week's return."""

    equal_weight: str
    cap_weight: str
    equal_minus_cap_week: float
    sectors: tuple[SectorReturn, ...]
    beat_benchmark: int


@dataclass(frozen=True, slots=True)
class Rates:
    """The 10-year Treasury yield (in percent) and its change over the week, in basis points."""

    ticker: str
    level: float
    prev_level: float
    change_bp: float


@dataclass(frozen=True, slots=True)
class EstimateRevision:
    """How analysts' average forward revenue estimate for one mega cap moved (fractions)."""

    name: str
    period: str
    revenue: float
    taken_on: date
    change_4w: float | None
    change_12w: float | None


@dataclass(frozen=True, slots=True)
class KeyDate:
    day: date
    kind: str
    label: str


@dataclass(frozen=True, slots=True)
class WeekStats:
    """Everything the digest says in numbers for one as-of session."""

    as_of: date
    bases: dict[str, date]
    returns: dict[str, dict[str, float | None]]
    spread_5d: SpreadStats
    spread_5d_index: SpreadStats | None
    relative_strength: RelativeStrength
    concentration: Concentration | None
    breadth: Breadth | None
    rates: Rates | None
    key_dates: tuple[KeyDate, ...]
    key_dates_source: str
    data_source: str
    notes: tuple[str, ...] = ()
    receipts: dict[str, Any] = field(default_factory=dict)
    estimates: tuple[EstimateRevision, ...] = ()
    key_dates_complete: bool = True
    """Whether the key-date calendar covers the whole horizon (else the email says nothing
    of the missing part and the editor is told)."""
    key_dates_days: int = 35
    week_sessions: int = 5
    """Sessions in the scoreboard's week (since the previous week's last close)."""
    rarities: tuple[Rarity, ...] = ()
    """The week's five-session moves by how rare they are, rarest first (stats/rarity.py)."""

    @property
    def prev_close(self) -> date:
        return self.bases["1W"]

    def to_json(self) -> dict[str, Any]:
        """The stats.json document."""
        return {
            "as_of": self.as_of.isoformat(),
            "prev_close": self.prev_close.isoformat(),
            "period_bases": _plain(self.bases),
            "returns": _plain(self.returns),
            "spread_5d": _plain(self.spread_5d),
            "spread_5d_index": _plain(self.spread_5d_index),
            "relative_strength": _plain(self.relative_strength),
            "concentration": _concentration_json(self.concentration),
            "breadth": _plain(self.breadth),
            "rates": _plain(self.rates),
            "key_dates": _plain(self.key_dates),
            "key_dates_source": self.key_dates_source,
            "rarities": _plain(self.rarities),
            "week_sessions": self.week_sessions,
            "key_dates_complete": self.key_dates_complete,
            "key_dates_days": self.key_dates_days,
            "data_source": self.data_source,
            "notes": list(self.notes),
            "receipts": _plain(self.receipts),
            "estimates": _plain(self.estimates),
        }


def _plain(value: Any) -> Any:
    """Dataclasses, dates and tuples as JSON-ready dicts, ISO strings and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _concentration_json(conc: Concentration | None) -> dict[str, Any] | None:
    if conc is None:
        return None
    document: dict[str, Any] = _plain(conc)
    document["basis"] = "price"
    document["members"] = {
        m.name: {
            "tickers": list(m.tickers),
            "weight": m.weight,
            "1W": m.week,
            "7D": m.seven_day,
            "ytd": m.ytd,
            "contribution": m.contribution,
            "share": m.share,
        }
        for m in conc.members
    }
    return document
